-- The adeptlua host: argument typing, exit statuses, tracebacks naming the recipe.
local helpers = require "spec_helpers"

describe("adeptlua host", function()
  local exe = helpers.adeptlua()

  it("types key=value overrides", function()
    local out, ok = helpers.run(exe .. " " .. helpers.tmpfile("return 0") ..
      " k=4 lr=1e-4 name=medqa flag=true -e 'for _, k in ipairs{\"k\",\"lr\",\"name\",\"flag\"} do " ..
      "io.write(k, \"=\", math.type(adept.args[k]) or type(adept.args[k]), \" \") end'")
    -- -e after the recipe is not an option: it must be rejected as a usage error
    assert.is_false(ok)
    out, ok = helpers.run(exe .. " -e 'for _, k in ipairs{\"k\",\"lr\",\"name\",\"flag\"} do " ..
      "io.write(k, \"=\", math.type(adept.args[k]) or type(adept.args[k]), \" \") end' " ..
      helpers.tmpfile("return 0") .. " k=4 lr=1e-4 name=medqa flag=true")
    assert.is_true(ok)
    assert.matches("k=integer lr=float name=string flag=boolean", out, 1, true)
  end)

  it("exits 1 with a traceback naming the recipe file and line", function()
    local recipe = helpers.tmpfile("local x = 1\nlocal y = nil\nprint(y.field)\n")
    local out, ok, code = helpers.run(exe .. " " .. recipe)
    assert.is_false(ok)
    assert.equals(1, code)
    assert.matches(recipe:gsub("%p", "%%%0") .. ":3:", out)
    assert.matches("stack traceback", out, 1, true)
  end)

  it("exits 2 on usage errors", function()
    local _, ok, code = helpers.run(exe .. " --threads abc")
    assert.is_false(ok)
    assert.equals(2, code)
    _, _, code = helpers.run(exe .. " --no-such-option")
    assert.equals(2, code)
    _, _, code = helpers.run(exe .. " recipe.lua notakeyvalue")
    assert.equals(2, code)
  end)

  it("prints help and version", function()
    local out, ok = helpers.run(exe .. " --help")
    assert.is_true(ok)
    assert.matches("usage: adeptlua", out, 1, true)
    out, ok = helpers.run(exe .. " --version")
    assert.is_true(ok)
    assert.matches("^adeptlua %d+%.%d+%.%d+", out)
  end)

  it("sets the thread count and the seed", function()
    local out = helpers.run(exe .. " --threads 1 --seed 17 -e 'print(adept.threads(), adept.seed)'")
    assert.matches("^1%s+17", out)
  end)

  it("runs the interactive prompt on expressions and statements", function()
    local out, ok = helpers.run("printf 'x = 21\\nx * 2\\n' | " .. exe .. " -i")
    assert.is_true(ok)
    assert.matches("42", out, 1, true)
  end)
end)
