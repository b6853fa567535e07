-- adeptlua --sandbox against the escape attempts of sandbox_cases.lua (one fresh process and temp folder per case),
-- and the sandbox's absence in plain runs.
local helpers = require "spec_helpers"
local cases = require "sandbox_cases"

local TINY = [[
local function TINY()
  return adept.model({vocab_size = 23, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 1,
                      num_attention_heads = 4, num_key_value_heads = 2}, {seed = 1})
end
]]

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- A temp folder laid out as sandbox_cases.lua describes; returns its path.
local function fixture()
  local t = helpers.run("mktemp -d"):gsub("%s+$", "")
  assert(helpers.run(("mkdir -p %s/data %s/secret %s/out %s/recipe"):format(t, t, t, t)))
  local function write(path, text) local f = assert(io.open(t .. "/" .. path, "w")); f:write(text); f:close() end
  write("data/input.txt", "the declared input\n")
  write("secret/secret.txt", "not declared\n")
  write("recipe/helper.lua", "return {hello = 'hello from helper'}\n")
  assert(select(2, helpers.run(("ln -s %s/secret %s/out/to_secret && ln -s %s/secret/new.txt %s/out/dangling")
                                 :format(t, t, t, t))))
  return t
end

describe("adeptlua --sandbox", function()
  local exe = helpers.adeptlua()

  for _, case in ipairs(cases) do
    it((case.allowed and "allows " or "refuses ") .. case.name, function()
      local t = fixture()
      local f = assert(io.open(t .. "/recipe/recipe.lua", "w"))
      f:write(("local T = %q\n"):format(t), TINY, case.code, "\n")
      f:close()
      local out, ok = helpers.run(("%s --sandbox --out %s/out --data %s/data %s/recipe/recipe.lua")
                                    :format(exe, t, t, t))
      helpers.run("rm -rf " .. q(t))
      if case.allowed then
        assert(ok, "expected success, got:\n" .. out)
        assert.matches(case.expect, out, 1, true)
      else
        assert(not ok, "the sandbox let this through:\n" .. out)
        local expect = case.expect or cases.SANDBOX
        assert(out:find(expect), ("expected '%s' in:\n%s"):format(expect, out))
        -- nothing may have been written outside the output folder, and the secret stays unread
        assert.is_nil(out:find("not declared", 1, true))
        assert.is_nil(out:find("root:", 1, true))
      end
    end)
  end

  it("is off without --sandbox, and --trust lifts it", function()
    local t = fixture()
    local code = q(("print(io.open(%q):read('l'))"):format(t .. "/secret/secret.txt"))
    local out, ok = helpers.run(exe .. " -e " .. code)
    assert(ok, out)
    assert.matches("not declared", out, 1, true)
    out, ok = helpers.run(exe .. " --sandbox --trust --out " .. t .. "/out -e " .. code)
    assert(ok, out)
    assert.matches("not declared", out, 1, true)
    out, ok = helpers.run(exe .. " --sandbox --out " .. t .. "/out -e " .. code)
    assert.is_false(ok)
    helpers.run("rm -rf " .. q(t))
  end)

  it("lists its flags and the bundle commands in --help; a misspelt bundle flag gets a suggestion", function()
    local out, ok = helpers.run(exe .. " --help")
    assert(ok, out)
    for _, w in ipairs{"--sandbox", "--trust", "--out DIR", "--data DIR", "--read PATH", "adeptlua pack recipe.lua",
                       "adeptlua run exp.adept", "adeptlua verify exp.adept", "adeptlua inspect exp.adept"} do
      assert.matches(w, out, 1, true)
    end
    local _, _, code = helpers.run(exe .. " --out")
    assert.equals(2, code)
    out, _, code = helpers.run(exe .. " --sanbox x.lua")
    assert.equals(2, code)
    assert.matches("unknown option '--sanbox' — did you mean '--sandbox'?", out, 1, true)
    out, _, code = helpers.run(exe .. " verfy x.adept")
    assert.equals(2, code)
    assert.matches("no recipe 'verfy' and no command of that name — did you mean 'verify'?", out, 1, true)
    out, ok = helpers.run(exe .. " run x.adept --dta /tmp")
    assert.is_false(ok)
    assert.matches("unknown option '--dta' — did you mean '--data'?", out, 1, true)
  end)

  it("prints a sandboxed recipe's declared options with --help, and checks them before any work", function()
    local t = fixture()
    local f = assert(io.open(t .. "/recipe/opts.lua", "w"))
    f:write([[local o = adept.options{{name = "steps", type = "integer", default = 2, min = 1, help = "how many"}}
io.open(adept.args.out .. "/ran.txt", "w"):write(o.steps):close()
]])
    f:close()
    local out, ok = helpers.run(("%s --sandbox --out %s/out %s/recipe/opts.lua --help"):format(exe, t, t))
    assert(ok, out)
    assert.matches("steps=INTEGER", out, 1, true)
    out, ok = helpers.run(("%s --sandbox --out %s/out %s/recipe/opts.lua setps=3"):format(exe, t, t))
    assert.is_false(ok)
    assert.matches("unknown option 'setps' — did you mean 'steps'?", out, 1, true)
    out, ok = helpers.run(("%s --sandbox --out %s/out %s/recipe/opts.lua steps=3"):format(exe, t, t))
    assert(ok, out)
    assert.equals("3", (helpers.run("cat " .. t .. "/out/ran.txt")))
    helpers.run("rm -rf " .. q(t))
  end)

  it("declares key=value paths as inputs and sets adept.args.out from --out", function()
    local t = fixture()
    local f = assert(io.open(t .. "/recipe/r.lua", "w"))
    f:write("print(io.open(adept.args.corpus):read('l'), adept.args.out, (adept.sandboxed()))\n")
    f:close()
    local out, ok = helpers.run(("%s --sandbox --out %s/out %s/recipe/r.lua corpus=%s/secret/secret.txt")
                                  :format(exe, t, t, t))
    assert(ok, out)
    assert.matches("not declared\t" .. t .. "/out\ttrue", out, 1, true)
    helpers.run("rm -rf " .. q(t))
  end)
end)
