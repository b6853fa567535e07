-- adept.sweep: every grid combination x seed runs as its own adeptlua process with key=value overrides; failed
-- runs do not stop the sweep; finished runs are skipped on a rerun; results.csv / results.json collect summaries.
local adept = require "adept"
local H = require "spec_helpers"

local RECIPE = [[
local a = adept.args
if a.x == 3 and not os.getenv("SWEEP_SPEC_FIX") then error("x = 3 is broken") end
local f = assert(io.open(a.out .. "/summary.json", "w"))
f:write(adept.json.encode({value = a.x * 10 + a.seed, lr = a.lr, mode = a.mode, seed_arg = adept.seed,
                           nested = {n = a.x}}))
f:close()
local c = io.open(a.out .. "/count", "a"); c:write("x\n"); c:close()
]]

local function count_runs(dir)
  local n = 0
  local f = io.open(dir .. "/count")
  if not f then return 0 end
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

describe("adept.sweep", function()
  it("runs the grid x seeds, isolates failures, resumes and writes the results table", function()
    local recipe = H.tmpfile(RECIPE)
    local out = os.tmpname()
    os.remove(out)
    local host = H.adeptlua()
    local rows, info = adept.sweep{recipe = recipe, grid = {x = {1, 3}, lr = {1e-4}}, seeds = {1, 2}, out = out,
                                   args = {mode = "fast"}, host = host, threads = 1}
    assert.equals(4, #rows)
    assert.same({ran = 4, skipped = 0, failed = 2}, info)
    local by = {}
    for _, r in ipairs(rows) do by[r.x .. "/" .. r.seed] = r end
    assert.equals("done", by["1/2"].status)
    assert.equals(12, by["1/2"].value)
    assert.equals(1e-4, by["1/2"].lr)
    assert.equals("fast", by["1/2"].mode)
    assert.equals(2, by["1/2"].seed_arg)
    assert.equals(1, by["1/2"]["nested.n"])
    assert.equals(out .. "/lr=0.0001,x=1,seed=2", by["1/2"].dir)
    assert.equals("failed", by["3/1"].status)
    assert.matches("x = 3 is broken", H.run("cat '" .. by["3/1"].dir .. "/sweep.log'"), 1, true)
    local csv = H.run("cat " .. out .. "/results.csv")
    assert.matches("^lr,x,seed,status,exit_code,dir,", csv)
    assert.matches("0.0001,1,2,done,0,", csv, 1, true)
    local json = adept.json.decode(H.run("cat " .. out .. "/results.json"))
    assert.equals(4, #json)
    -- rerun: finished runs are skipped (not rerun), the failed ones retried
    local rows2, info2 = adept.sweep{recipe = recipe, grid = {x = {1, 3}, lr = {1e-4}}, seeds = {1, 2}, out = out,
                                     args = {mode = "fast"}, host = host, threads = 1}
    assert.same({ran = 2, skipped = 2, failed = 2}, info2)
    assert.equals(1, count_runs(by["1/2"].dir))
    for _, r in ipairs(rows2) do if r.x == 1 then assert.equals(r.x * 10 + r.seed, r.value) end end
    H.run("rm -rf '" .. out .. "'")
    os.remove(recipe)
  end)

  it("plans without running and checks its arguments", function()
    local recipe = H.tmpfile("")
    local rows = adept.sweep{recipe = recipe, grid = {k = {2, 4}, metric = {"a", "b"}}, seeds = {0}, out = "/nonexistent_x/y",
                             dry_run = true}
    assert.equals(4, #rows)
    assert.equals("planned", rows[1].status)
    assert.matches("'k=2' 'metric=a' 'seed=0' 'out=/nonexistent_x/y/k=2,metric=a,seed=0'", rows[1].command, 1, true)
    assert.has_error(function() adept.sweep{recipe = "/nope.lua", out = "x"} end)
    assert.has_error(function() adept.sweep{recipe = recipe, out = "x", grid = {k = {}}} end)
    assert.has_error(function() adept.sweep{recipe = recipe, out = "x", seeds = {1.5}} end)
    os.remove(recipe)
  end)
end)

describe("adept.sweep run identity", function()
  it("skips a finished run only when recipe and overrides match, else fails before running anything", function()
    local recipe = H.tmpfile(RECIPE)
    local out = os.tmpname()
    os.remove(out)
    local host = H.adeptlua()
    local spec = {recipe = recipe, grid = {x = {1}}, seeds = {0}, out = out, args = {mode = "a"}, host = host, threads = 1}
    local _, info = adept.sweep(spec)
    assert.same({ran = 1, skipped = 0, failed = 0}, info)
    _, info = adept.sweep(spec)
    assert.same({ran = 0, skipped = 1, failed = 0}, info)
    spec.args = {mode = "b"}
    assert.has_error(function() adept.sweep(spec) end,
      "adept.sweep: " .. out .. "/x=1,seed=0 holds a finished run of another sweep (mode: 'b' here, 'a' there): "
      .. "pass force=true to rerun it, or choose another out=")
    spec.args = {mode = "a"}
    local f = assert(io.open(recipe, "a")); f:write("-- edited\n"); f:close()
    local ok, err = pcall(adept.sweep, spec)
    assert.is_false(ok)
    assert.matches("the recipe's source changed", err, 1, true)
    spec.force = true
    _, info = adept.sweep(spec)
    assert.same({ran = 1, skipped = 0, failed = 0}, info)
    assert.equals(1, count_runs(out .. "/x=1,seed=0")) -- force reran it from an empty directory
    assert.has_error(function() adept.sweep{recipe = recipe, out = out, seds = {1}} end)
    H.run("rm -rf '" .. out .. "'")
    os.remove(recipe)
  end)
end)
