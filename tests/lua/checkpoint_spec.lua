-- Checkpoint integrity (issue 16): a manifest of sizes and SHA-256 per file verified on resume, the fallback to
-- the newest checkpoint that verifies, implausible steps and non-finite weights refused, keep >= 1 keeping the
-- checkpoint just written, one writer per run directory, dead writers' temporaries only, and nested runs
-- keeping the outer run's signal handling. Runs go through child processes where stderr, exit codes, real
-- signals and a second process matter.
local adept = require "adept"
local H = require "spec_helpers"

local exe = H.adeptlua()

local function tmpdir()
  local d = os.tmpname() .. "_ckpt"
  adept.fs.mkdir_p(d)
  return d
end

local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

local function steps_in(dir)
  local out = {}
  for _, n in ipairs(adept.fs.list(dir)) do if n:match("^step_") then out[#out + 1] = n end end
  return out
end

-- The child: a tiny model trained on a deterministic function of the micro-batch index, checkpointing every
-- step. Arguments: out, steps, keep, nan_at (a callback puts a NaN into a weight after that step), stop_at.
local recipe = H.tmpfile([[
local adept = require "adept"
local a = adept.args
local m = adept.model({vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
                       num_attention_heads = 2, num_key_value_heads = 1}, {seed = 9})
local opt = adept.adamw(m, {lr = 2e-2})
local function micro(i)
  local ids = {}
  for r = 1, 2 do
    local row = {}
    for t = 1, 9 do row[t] = (i * 17 + r * 7 + t * t) % 29 end
    ids[r] = row
  end
  return ids
end
local every = {}
if a.nan_at then
  every[a.nan_at] = function(ctx)
    local t = ctx.model:param("model.norm.weight"):clone()
    t:set(0 / 0, 1)
    ctx.model:set_param("model.norm.weight", t)
  end
end
if a.stop_at then every[a.stop_at] = function() return "stop" end end
local r = adept.train{model = m, optimizer = opt, data = micro, steps = a.steps or 4, every = every,
  progress = false, checkpoint = {dir = a.out .. "/ckpt", every = 1, keep = a.keep}, resume = true,
  log = a.out .. "/metrics.jsonl"}
print(("RESULT steps=%d resumed_from=%s checkpoint=%s"):format(r.steps, tostring(r.resumed_from), tostring(r.checkpoint)))
]])

local function run(args, env)
  return H.run((env or "") .. " timeout 120 " .. exe .. " " .. recipe .. " " .. args)
end

-- The byte range of tensor `name` in a safetensors file: first and last byte, 1-based in the file's string.
local function tensor_range(path, name)
  local data = slurp(path)
  local n = string.unpack("<I8", data)
  local header = adept.json.decode(data:sub(9, 8 + n))
  local e = assert(header[name], name .. " not in " .. path)
  return 8 + n + e.data_offsets[1] + 1, 8 + n + e.data_offsets[2], data
end

-- Rewrites the "trainer" metadata of a trainer_state.safetensors file through fn(table) (a byte-level edit of the
-- file, as the probe made it: the data section is kept as it is).
local function edit_trainer_meta(path, fn)
  local data = slurp(path)
  local n = string.unpack("<I8", data)
  local header = adept.json.decode(data:sub(9, 8 + n))
  local tr = adept.json.decode(header.__metadata__.trainer)
  fn(tr)
  header.__metadata__.trainer = adept.json.encode(tr)
  local text = adept.json.encode(header)
  text = text .. string.rep(" ", (8 - #text % 8) % 8)
  spit(path, string.pack("<I8", #text) .. text .. data:sub(9 + n))
end

describe("a checkpoint", function()
  it("records every file's size and SHA-256 and its step in a manifest written inside it", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=2")
    assert.is_true(ok, out)
    local c = d .. "/ckpt/step_00000002"
    local man = adept.json.read(c .. "/manifest.json")
    assert.equals(1, man.format)
    assert.equals(2, man.step)
    local listed = {}
    for _, f in ipairs(man.files) do
      local hex, size = adept.fs.sha256(c .. "/" .. f.name)
      assert.equals(hex, f.sha256, f.name)
      assert.equals(size, f.bytes, f.name)
      listed[f.name] = true
    end
    for _, need in ipairs{"trainer_state.safetensors", "model.safetensors", "config.json"} do
      assert.is_true(listed[need], need .. " not in the manifest")
    end
    assert.is_true(adept.fs.checkpoint_verify(c, 2, 2))
  end)
end)

describe("resume", function()
  it("detects a changed byte inside an Adam moment and falls back to the previous checkpoint, saying so", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=4 keep=2")
    assert.is_true(ok, out)
    local state = d .. "/ckpt/step_00000004/trainer_state.safetensors"
    local first, last, data = tensor_range(state, "exp_avg.model.layers.1.mlp.up_proj.weight")
    local at = (first + last) // 2
    spit(state, data:sub(1, at - 1) .. string.char((data:byte(at) + 1) % 256) .. data:sub(at + 1))
    out, ok = run("out=" .. d .. " steps=5")
    assert.is_true(ok, out)
    -- the warning names the bad checkpoint, the reason and the one used instead
    assert.matches("step_00000004 (trainer_state.safetensors does not match its SHA-256", out, 1, true)
    assert.matches("falling back to " .. d .. "/ckpt/step_00000003", out, 1, true)
    assert.matches("RESULT steps=5 resumed_from=" .. d .. "/ckpt/step_00000003 ", out, 1, true)
  end)

  it("falls back from a truncated newest checkpoint to the intact previous one", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=4 keep=2")
    assert.is_true(ok, out)
    local w = d .. "/ckpt/step_00000004/model.safetensors"
    local data = slurp(w)
    spit(w, data:sub(1, #data // 2))
    out, ok = run("out=" .. d .. " steps=4")
    assert.is_true(ok, out)
    assert.matches("step_00000004 (model.safetensors is " .. #data // 2 .. " bytes, the manifest records "
                   .. #data .. " (truncated?))", out, 1, true)
    assert.matches("RESULT steps=4 resumed_from=" .. d .. "/ckpt/step_00000003 ", out, 1, true)
  end)

  it("refuses a step edited to 10^12, whether or not the manifest and the name were edited to match", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=3 keep=1")
    assert.is_true(ok, out)
    local c = d .. "/ckpt/step_00000003"
    edit_trainer_meta(c .. "/trainer_state.safetensors", function(tr) tr.step = 1000000000000 end)
    -- only the file edited: its checksum no longer matches; with no other checkpoint, the run stops naming it
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_false(ok, out)
    assert.matches("no checkpoint in " .. d .. "/ckpt verifies", out, 1, true)
    -- (the longer number made the file longer; a same-length edit fails the SHA-256 instead, as the moment test shows)
    assert.matches(c:gsub("%p", "%%%0") .. ": trainer_state.safetensors is %d+ bytes, the manifest records %d+ %(changed%)", out)
    assert.is_nil(out:match("RESULT"))
    -- a manifest rewritten to agree with the file still disagrees with the directory's name
    adept.fs.checkpoint_seal(c, 1000000000000)
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_false(ok, out)
    assert.matches(c .. ": manifest.json records step 1000000000000, the directory is step 3", out, 1, true)
    -- and with the directory renamed too, the step is past the run's total
    local big = d .. "/ckpt/step_1000000000000"
    adept.fs.rename(c, big)
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_false(ok, out)
    assert.matches(big .. ": step 1000000000000 is beyond this run's total of 3 steps", out, 1, true)
  end)

  it("names each checkpoint and why when none verifies", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=3 keep=2")
    assert.is_true(ok, out)
    os.remove(d .. "/ckpt/step_00000003/trainer_state.safetensors")
    spit(d .. "/ckpt/step_00000002/config.json", "{}")
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_false(ok, out)
    assert.matches(d .. "/ckpt/step_00000003: trainer_state.safetensors is missing", out, 1, true)
    assert.matches(d .. "/ckpt/step_00000002: config.json is 2 bytes, the manifest records", out, 1, true)
  end)

  it("resumes from a checkpoint written before manifests, warning that its checksums cannot be checked", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=2 keep=1")
    assert.is_true(ok, out)
    os.remove(d .. "/ckpt/step_00000002/manifest.json")
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_true(ok, out)
    assert.matches("step_00000002 has no manifest.json (written by an earlier adeptlua)", out, 1, true)
    assert.matches("RESULT steps=3 resumed_from=" .. d .. "/ckpt/step_00000002 ", out, 1, true)
  end)
end)

describe("non-finite weights", function()
  it("are never written as a checkpoint, nor named the last good one", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=6 nan_at=3")
    assert.is_false(ok, out)
    assert.matches("step 3: the checkpoint was not written: ", out, 1, true)
    assert.matches("tensor model.norm.weight holds NaN at element 0", out, 1, true)
    assert.matches("The last good checkpoint is " .. d .. "/ckpt/step_00000002", out, 1, true)
    assert.is_false(adept.fs.exists(d .. "/ckpt/step_00000003"))
    for _, n in ipairs(adept.fs.list(d .. "/ckpt")) do assert.is_nil(n:match("^%.tmp"), "left behind: " .. n) end
  end)

  it("in a checkpoint whose manifest agrees with them are refused on resume", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=2 keep=2")
    assert.is_true(ok, out)
    local c = d .. "/ckpt/step_00000002"
    local w = c .. "/model.safetensors"
    local first, _, data = tensor_range(w, "model.norm.weight")
    spit(w, data:sub(1, first - 1) .. string.pack("<I4", 0x7fc00000) .. data:sub(first + 4))
    -- a manifest made by hand for the edited file (checkpoint_seal refuses to seal NaN weights)
    local man = adept.json.read(c .. "/manifest.json")
    for _, f in ipairs(man.files) do f.sha256, f.bytes = adept.fs.sha256(c .. "/" .. f.name) end
    adept.json.write(c .. "/manifest.json", man)
    out, ok = run("out=" .. d .. " steps=3")
    assert.is_true(ok, out)
    assert.matches(c .. " (model.safetensors: tensor model.norm.weight holds NaN at element 0)", out, 1, true)
    assert.matches("RESULT steps=3 resumed_from=" .. d .. "/ckpt/step_00000001 ", out, 1, true)
  end)
end)

describe("checkpoint.keep", function()
  it("is refused below 1 before any step, naming the option; every likewise", function()
    local m = H.tiny_model()
    local d = tmpdir()
    for _, bad in ipairs{{keep = 0}, {keep = -1}, {keep = 1.5}, {every = 0}, {every = -1}, {kepp = 1}} do
      local ck = {dir = d .. "/ckpt", every = bad.every or 1, keep = bad.keep, kepp = bad.kepp}
      local ok, err = pcall(adept.train, {model = m, optimizer = adept.adamw(m), data = function() return {{1, 2, 3}} end,
        steps = 2, progress = false, checkpoint = ck})
      assert.is_false(ok)
      local key = next(bad)
      assert.matches(key == "kepp" and "unknown checkpoint option 'kepp'" or ("checkpoint." .. key .. " must be an integer >= 1"),
                     err, 1, true)
    end
    assert.same({}, adept.fs.exists(d .. "/ckpt") and steps_in(d .. "/ckpt") or {})
  end)

  it("log_every, eval_every, eval_batches and batch_size below 1 are refused before step 1, naming the option", function()
    local m = H.tiny_model()
    local w0 = m:param("model.norm.weight"):get(1)
    local cases = {
      {log_every = 0}, {log_every = -2}, {eval_every = 0}, {eval_every = 2.5}, {eval_batches = 0}, {batch_size = 0},
    }
    for _, bad in ipairs(cases) do
      local key, val = next(bad)
      local cfg = {model = m, optimizer = adept.adamw(m), data = function() return {{1, 2, 3}} end, steps = 2,
                   progress = false, eval = {held = {{{1, 2, 3}}}}}
      cfg[key] = val
      local ok, err = pcall(adept.train, cfg)
      assert.is_false(ok)
      assert.matches("adept.train: " .. key .. " must be an integer >= 1, got " .. tostring(val), err, 1, true)
    end
    local ok, err = pcall(adept.train, {model = m, optimizer = adept.adamw(m), data = function() return {{1, 2, 3}} end,
                                        steps = 1, progress = false, eval = "held"})
    assert.is_false(ok)
    assert.matches("eval must be a table", err, 1, true)
    assert.equal(w0, m:param("model.norm.weight"):get(1)) -- no step ran
  end)

  it("never removes the checkpoint just written, even below a newer one that failed verification", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " steps=6 keep=3")
    assert.is_true(ok, out)
    assert.same({"step_00000004", "step_00000005", "step_00000006"}, steps_in(d .. "/ckpt"))
    for _, s in ipairs{"5", "6"} do spit(d .. "/ckpt/step_0000000" .. s .. "/config.json", "{}") end
    -- resumes from step 4, stops after step 5 with keep = 1: step 5 is the newest written, step 6 is not ours
    out, ok = run("out=" .. d .. " steps=6 keep=1 stop_at=5")
    assert.is_true(ok, out)
    assert.matches("falling back to " .. d .. "/ckpt/step_00000004", out, 1, true)
    assert.matches("RESULT steps=5 resumed_from=" .. d .. "/ckpt/step_00000004 checkpoint=" .. d
                   .. "/ckpt/step_00000005", out, 1, true)
    assert.same({"step_00000005", "step_00000006"}, steps_in(d .. "/ckpt"))
    assert.is_true(adept.fs.checkpoint_verify(d .. "/ckpt/step_00000005", 5, 6))
  end)
end)

describe("one writer per run directory", function()
  local function wait_paused(dir)
    for _ = 1, 600 do -- up to 60 s for the child to reach the write it pauses in
      for _, n in ipairs(adept.fs.exists(dir) and adept.fs.list(dir) or {}) do
        if n:match("^%.tmp%-step_") and adept.fs.exists(dir .. "/" .. n .. "/.test-paused") then return n end
      end
      adept.sleep(0.1)
    end
  end

  local function gone(pid)
    for _ = 1, 200 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return true end
      adept.sleep(0.05)
    end
  end

  it("refuses a second writer at start naming the first one's PID, and takes over once it is dead", function()
    local d = tmpdir()
    os.execute(("ADEPT_TEST_CHECKPOINT_PAUSE=2:60 %s %s out=%s steps=4 >%s/log 2>&1 & echo $! > %s/pid"):format(
      exe, recipe, d, d, d))
    local pid = tonumber(slurp(d .. "/pid"))
    local tmp = wait_paused(d .. "/ckpt")
    assert.is_not_nil(tmp, "the child never reached the checkpoint write: " .. slurp(d .. "/log"))
    local m = H.tiny_model()
    local function second(cfg)
      cfg.model, cfg.optimizer, cfg.steps, cfg.progress = m, adept.adamw(m), 1, false
      cfg.data = function() return {{1, 2, 3, 4}} end
      return pcall(adept.train, cfg)
    end
    local ok, err = second{checkpoint = {dir = d .. "/ckpt", every = 1}}
    assert.is_false(ok)
    assert.matches(d .. "/ckpt/.adept.lock: another adeptlua run (PID " .. pid .. ") is writing here", err, 1, true)
    -- the log is the run's other output: a second run writing it is refused too
    ok, err = second{checkpoint = {dir = d .. "/other"}, log = d .. "/metrics.jsonl"}
    assert.is_false(ok)
    assert.matches(d .. "/metrics.jsonl.lock: another adeptlua run (PID " .. pid .. ")", err, 1, true)
    -- nothing of the first run's was touched
    assert.equals("directory", adept.fs.exists(d .. "/ckpt/" .. tmp))
    assert.same({"step_00000001"}, steps_in(d .. "/ckpt"))
    os.execute("kill -KILL " .. pid)
    assert.is_true(gone(pid), "the child did not die")
    -- the kernel released its lock; its temporary is a dead writer's and goes at the next checkpoint
    ok, err = second{checkpoint = {dir = d .. "/ckpt", every = 1}, log = d .. "/metrics.jsonl"}
    assert.is_true(ok, err)
    assert.is_false(adept.fs.exists(d .. "/ckpt/" .. tmp))
  end)

  it("removes only temporaries whose writer is dead", function()
    local d = tmpdir()
    os.execute("sleep 60 >/dev/null 2>&1 & echo $! > " .. d .. "/live")
    local live = tonumber(slurp(d .. "/live"))
    local dead = tonumber(H.run("sh -c 'echo $$'"):match("%d+"))
    assert.is_true(gone(dead))
    local ck = d .. "/ckpt"
    local live_tmp, dead_tmp = ("%s/.tmp-step_00000009-%d"):format(ck, live), ("%s/.tmp-step_00000009-%d"):format(ck, dead)
    adept.fs.mkdir_p(live_tmp)
    adept.fs.mkdir_p(dead_tmp)
    spit(live_tmp .. "/model.safetensors", "being written")
    local m = H.tiny_model()
    local r = adept.train{model = m, optimizer = adept.adamw(m), data = function() return {{1, 2, 3, 4}} end,
      steps = 1, progress = false, checkpoint = {dir = ck, every = 1}}
    assert.equals(ck .. "/step_00000001", r.checkpoint)
    os.execute("kill " .. live)
    assert.equals("file", adept.fs.exists(live_tmp .. "/model.safetensors"))
    assert.is_false(adept.fs.exists(dead_tmp))
  end)
end)

describe("a nested adept.train", function()
  it("leaves the outer run's signal handling in place: a later SIGTERM still checkpoints and exits", function()
    local nested = H.tmpfile([[
local adept = require "adept"
local a = adept.args
local function model(seed)
  return adept.model({vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 1,
                      num_attention_heads = 2, num_key_value_heads = 1}, {seed = seed})
end
local function data(i) return {{(i * 5) % 29, (i * 7 + 1) % 29, (i * 3 + 2) % 29, 4}} end
local m = model(1)
adept.train{model = m, optimizer = adept.adamw(m), data = data, steps = 5, progress = false,
  checkpoint = {dir = a.out .. "/ckpt", every = 100},
  every = {
    [2] = function()
      local inner = model(2)
      adept.train{model = inner, optimizer = adept.adamw(inner), data = data, steps = 1, progress = false}
    end,
    [3] = function()
      -- any thread may run the handler, later than kill returns on a busy machine: wait for the flag
      os.execute("kill -TERM " .. adept.getpid())
      for _ = 1, 500 do if adept.interrupted() then break end adept.sleep(0.01) end
    end,
  }}
print("not interrupted")
]])
    local d = tmpdir()
    local out, ok, code = H.run("timeout 60 " .. exe .. " " .. nested .. " out=" .. d)
    assert.is_false(ok)
    assert.equals(143, code)
    assert.matches("adept.train: interrupted by SIGTERM at step 3: checkpoint written to " .. d
                   .. "/ckpt/step_00000003", out, 1, true)
    assert.is_nil(out:match("not interrupted"))
    assert.is_true(adept.fs.checkpoint_verify(d .. "/ckpt/step_00000003", 3))
  end)
end)
