-- adept.options: declared recipe options (types, ranges, choices, suggestions), the key check every library
-- option table uses, and `adeptlua recipe.lua --help`.
local adept = require "adept"
local H = require "spec_helpers"

local DECLS = {
  help = "A test recipe.",
  {name = "steps", type = "integer", default = 40, min = 1, help = "training steps"},
  {name = "lr", type = "number", default = 1e-3, min = 0, max = 1, help = "peak learning rate"},
  {name = "metric", choices = {"mask_out", "fisher"}, default = "mask_out", help = "importance metric"},
  {name = "layers", type = "list", help = "layers to expand"},
  {name = "policy", type = {"string", "function"}, default = "one", choices = {"one", "decoupled"}, help = "LR policy"},
  {name = "flag", type = "boolean", default = false, help = "a switch"},
}

describe("adept.options", function()
  it("fills defaults and converts command-line values losslessly", function()
    local o = adept.options(DECLS, {steps = 12, lr = 1, layers = "2,4", flag = true})
    assert.equals(12, o.steps)
    assert.equals(1, o.lr)
    assert.equals("mask_out", o.metric)
    assert.same({2, 4}, o.layers)
    assert.is_true(o.flag)
    assert.equals(7, adept.options(DECLS, {steps = 7.0}).steps)
    assert.equals("integer", math.type(adept.options(DECLS, {steps = 7.0}).steps))
    local fn = function() end
    assert.equals(fn, adept.options(DECLS, {policy = fn}).policy)
  end)

  it("rejects unknown keys with a suggestion, wrong types, ranges and choices", function()
    local function err(args)
      local ok, e = pcall(adept.options, DECLS, args)
      assert.is_false(ok)
      return e
    end
    assert.matches("unknown option 'setps' — did you mean 'steps'? (options: steps, lr, metric, layers, policy, flag)",
      err{setps = 10}, 1, true)
    assert.not_matches("did you mean", err{zzzzzz = 1}, 1, true)
    assert.matches("option 'lr' (command line) must be number, got 'abc' (string)", err{lr = "abc"}, 1, true)
    assert.matches("option 'steps' (command line) must be integer, got 2.5", err{steps = 2.5}, 1, true)
    assert.matches("option 'steps' (command line) must be >= 1, got 0", err{steps = 0}, 1, true)
    assert.matches("option 'lr' (command line) must be <= 1, got 2", err{lr = 2}, 1, true)
    assert.matches("must be one of mask_out, fisher, got 'fishr' — did you mean 'fisher'?", err{metric = "fishr"}, 1, true)
    assert.matches("option 'flag' (command line) must be boolean", err{flag = "yes"}, 1, true)
    assert.matches("is NaN", err{lr = 0 / 0}, 1, true)
  end)

  it("checks the declarations themselves", function()
    assert.has_error(function() adept.options({{name = "x", type = "float"}}, {}) end)
    assert.has_error(function() adept.options({{name = "x", hlep = "typo"}}, {}) end)
    assert.has_error(function() adept.options({{name = "x"}, {name = "x"}}, {}) end)
    assert.has_error(function() adept.options({{name = "x", required = true}}, {}) end)
  end)

  it("prints the options with --help and exits 0 before any work", function()
    local recipe = H.tmpfile("local o = adept.options{help = 'A demo.', {name = 'steps', type = 'integer', default = 40, "
      .. "min = 1, help = 'training steps'}}\nerror('must not run')\n")
    local out, ok = H.run(H.adeptlua() .. " " .. recipe .. " --help")
    assert.is_true(ok)
    assert.matches("A demo.", out, 1, true)
    assert.matches("steps=INTEGER  training steps (default 40; >= 1)", out, 1, true)
    -- a recipe without declarations stops at its first real work
    local plain = H.tmpfile("adept.load('/nonexistent')\nerror('must not run')\n")
    out, ok = H.run(H.adeptlua() .. " " .. plain .. " --help")
    assert.is_true(ok)
    assert.matches("declares no options with adept.options", out, 1, true)
    os.remove(recipe)
    os.remove(plain)
  end)
end)

describe("option tables of the library", function()
  it("reject unknown keys with a suggestion", function()
    local ok, e = pcall(adept.load, "x", {alow_nonfinite = true})
    assert.is_false(ok)
    assert.matches("adept.load: unknown option 'alow_nonfinite' — did you mean 'allow_nonfinite'?", e, 1, true)
    ok, e = pcall(adept.dataset, {path = "x", seq_lne = 3})
    assert.matches("adept.dataset: unknown option 'seq_lne' — did you mean 'seq_len'?", e, 1, true)
    ok, e = pcall(adept.importance.layers, H.tiny_model(), {H.TINY_BATCH}, {metirc = "fisher"})
    assert.matches("adept.importance.layers: unknown option 'metirc' — did you mean 'metric'?", e, 1, true)
    ok, e = pcall(require("adept.cpt").options, "adept", {}, {setps = 3})
    assert.matches("unknown option 'setps' — did you mean 'steps'?", e, 1, true)
    ok, e = pcall(adept.options.check_keys, {b = 1}, {"a"}, "f")
    assert.matches("f: unknown option 'b' — did you mean 'a'? (options: a)", e, 1, true)
  end)

  it("suggests by edit distance with swaps", function()
    assert.equals("steps", adept.suggest("setps", {"seed", "steps", "lr"}))
    assert.equals("lr_policy", adept.suggest("lr_polcy", {"lr", "lr_policy"}))
    assert.is_nil(adept.suggest("bogus", {"recompute", "dtype"}))
  end)
end)

describe("adept.sha256", function()
  it("hashes strings and files (FIPS 180-2 test vector)", function()
    assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", adept.sha256("abc"))
    local p = H.tmpfile("abc", ".txt")
    local hex, size = adept.fs.sha256(p)
    assert.equals(adept.sha256("abc"), hex)
    assert.equals(3, size)
    assert.equals(3, adept.fs.stat(p).size)
    os.remove(p)
    assert.has_error(function() adept.fs.sha256("/nonexistent/file") end)
  end)
end)
