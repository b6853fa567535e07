-- adeptlua pack / inspect / run / verify: a bundle packed in one temp folder verifies bitwise (same thread count)
-- after its inputs moved elsewhere and are found through --data; missing and changed inputs are named.
local helpers = require "spec_helpers"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local RECIPE = [[
local adept = require "adept"
local a = adept.args
local helper = require "helper"
local m = adept.load(a.model)
local text = assert(io.open(a.corpus, "rb")):read("a")
local ids = {}
for i = 1, 33 do ids[i] = text:byte(i) % m.config.vocab_size end
local opt = adept.adamw(m, {lr = a.lr})
local losses = {}
for step = 1, a.steps do
  m:zero_grad()
  losses[step] = m:loss_and_grad({ids})
  opt:step()
end
adept.fs.mkdir_p(a.out)
adept.json.write(a.out .. "/summary.json", {loss_first = losses[1], loss_last = losses[#losses], steps = a.steps,
                                            tag = helper.tag, where = a.out .. "/summary.json",
                                            wall_time = os.clock()})
local f = assert(io.open(a.out .. "/metrics.jsonl", "w"))
for i, l in ipairs(losses) do f:write(adept.json.encode({type = "train", step = i, loss = l}), "\n") end
f:close()
]]

describe("adeptlua bundles", function()
  local exe = helpers.adeptlua()
  local t

  before_each(function()
    t = helpers.run("mktemp -d"):gsub("%s+$", "")
    assert(select(2, helpers.run(("mkdir -p %s/src/data %s/src/recipe %s/elsewhere"):format(t, t, t))))
    local function write(path, text) local f = assert(io.open(t .. "/" .. path, "w")); f:write(text); f:close() end
    write("src/recipe/train.lua", RECIPE)
    write("src/recipe/helper.lua", "return {tag = 'from helper'}\n")
    write("src/data/corpus.txt", ("the quick brown fox jumps over the lazy dog. "):rep(4))
    local out, ok = helpers.run(exe .. " -e " .. q(([[
      adept.model({vocab_size = 23, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
                   num_attention_heads = 4, num_key_value_heads = 2}, {seed = 5, init_std = 0.3}):save(%q)]])
      :format(t .. "/src/data/model")))
    assert(ok, out)
  end)

  after_each(function() helpers.run("rm -rf " .. q(t)) end)

  local function args(root)
    return ("model=%s/data/model corpus=%s/data/corpus.txt lr=0.01 steps=4"):format(root, root)
  end

  it("packs, inspects, and verifies bitwise after the inputs moved (found via --data)", function()
    local src = t .. "/src"
    local out, ok = helpers.run(("%s --threads 2 %s/recipe/train.lua %s out=%s/run1"):format(exe, src, args(src), src))
    assert(ok, out)
    out, ok = helpers.run(("%s --threads 2 pack %s/recipe/train.lua %s out=%s/run1 -o %s/exp.adept --results %s/run1")
                            :format(exe, src, args(src), src, t, src))
    assert(ok, out)
    assert.matches("1 module", out, 1, true)

    out, ok = helpers.run(("%s inspect %s/exp.adept"):format(exe, t))
    assert(ok, out)
    local sha = helpers.run("sha256sum " .. src .. "/data/corpus.txt"):match("^(%x+)")
    assert.matches("corpus.txt  sha256 " .. sha, out, 1, true)
    assert.matches("module   helper", out, 1, true)
    assert.matches("option   lr=0.01", out, 1, true)
    assert.matches("threads 2", out, 1, true)

    -- the inputs move away: a run without --data names each missing file, its hash and where it looked
    assert(select(2, helpers.run(("mv %s/data %s/elsewhere/moved"):format(src, t))))
    out, ok = helpers.run(("%s run %s/exp.adept --out %s/run2"):format(exe, t, t))
    assert.is_false(ok)
    assert.matches("corpus.txt (sha256 " .. sha, out, 1, true)
    assert.matches("missing; looked in where it was packed (" .. src .. "/data/corpus.txt)", out, 1, true)
    assert.matches("config.json", out, 1, true)

    out, ok = helpers.run(("%s verify %s/exp.adept --data %s/elsewhere"):format(exe, t, t))
    assert(ok, out)
    assert.matches("summary.json: loss_first%s+bitwise", out)
    assert.matches("summary.json: loss_last%s+bitwise", out)
    assert.matches("summary.json: tag%s+bitwise", out)
    assert.matches("summary.json: where%s+bitwise", out) -- the re-run's folder read as the original's
    assert.matches("summary.json: wall_time%s+not compared %(timing%)", out)
    assert.matches("metrics.jsonl: train:loss%s+bitwise", out)
    assert.matches("verdict: %d+ bitwise, 0 within tolerance, 0 differ", out)

    -- a changed input is a mismatch naming the expected and the found hash
    local f = assert(io.open(t .. "/elsewhere/moved/corpus.txt", "a")); f:write("!"); f:close()
    local found = helpers.run("sha256sum " .. t .. "/elsewhere/moved/corpus.txt"):match("^(%x+)")
    out, ok = helpers.run(("%s run %s/exp.adept --data %s/elsewhere --out %s/run3"):format(exe, t, t, t))
    assert.is_false(ok)
    assert.matches("corpus.txt (sha256 " .. sha, out, 1, true)
    assert.matches("mismatched", out, 1, true)
    assert.matches("has sha256 " .. found, out, 1, true)
  end)

  it("runs sandboxed: a bundled recipe that reaches outside fails with the sandbox message", function()
    local src = t .. "/src"
    local f = assert(io.open(src .. "/recipe/evil.lua", "w"))
    f:write("io.open(" .. ("%q"):format(t .. "/src/recipe/helper.lua") .. ")\n")
    f:close()
    local out, ok = helpers.run(("%s pack %s/recipe/evil.lua -o %s/evil.adept"):format(exe, src, t))
    assert(ok, out)
    out, ok = helpers.run(("%s run %s/evil.adept --out %s/evil-run"):format(exe, t, t))
    assert.is_false(ok)
    assert.matches("sandbox: reading '" .. t .. "/src/recipe/helper.lua'", out, 1, true)
    out, ok = helpers.run(("%s run %s/evil.adept --trust --out %s/evil-run"):format(exe, t, t))
    assert(ok, out)
  end)

  it("includes inputs under the size limit and finds them in the bundle", function()
    local src = t .. "/src"
    local out, ok = helpers.run(("%s pack %s/recipe/train.lua %s -o %s/small.adept --inputs --max-bytes 100"):format(
      exe, src, args(src), t))
    assert.is_false(ok)
    assert.matches("over the limit of 100", out, 1, true)
    out, ok = helpers.run(("%s pack %s/recipe/train.lua %s -o %s/full.adept --inputs"):format(exe, src, args(src), t))
    assert(ok, out)
    assert(select(2, helpers.run("rm -rf " .. src .. "/data")))
    out, ok = helpers.run(("%s run %s/full.adept --out %s/run4"):format(exe, t, t))
    assert(ok, out)
    assert.matches('"tag":%s*"from helper"', (helpers.run("cat " .. t .. "/run4/summary.json")))
  end)
end)
