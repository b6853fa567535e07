-- Rows checkpoints (issue 11, point 7): a checkpoint of a run that trains part of the model holds only the rows
-- trained (rows.safetensors, f32) and the identity of the base they apply to; a resume checks that identity
-- against the model the recipe rebuilt before loading anything, and stays bitwise exact. A run where every row
-- trains, and checkpoint.full = true, write the whole model as before. Runs go through child processes, so a
-- kill is a real SIGKILL and a refused resume a real exit.
local adept = require "adept"
local ckpt = require "adept.checkpoint"
local H = require "spec_helpers"

local exe = H.adeptlua()

local function tmpdir()
  local d = os.tmpname() .. "_rows"
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

-- The model of the child, built the same way here to compute what the checkpoints must name: a random 3-layer
-- model (seed), layers `copies_of` expanded with identity copies, and only the copies trainable (ADEPT's
-- stage 2), or every row (all=true).
local CONFIG = {vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 3,
                num_attention_heads = 2, num_key_value_heads = 1}
local BUILD = [[
local function build(adept, seed, copies_of, all)
  local m = adept.model(CONFIG, {seed = seed})
  local copies = m:expand(copies_of, {init = "identity"})
  if not all then
    m:freeze("all")
    for _, l in ipairs(copies) do m:unfreeze("^model%.layers%." .. l .. "%.") end
  end
  return m, copies
end
]]
local function config_src()
  local parts = {}
  for k, v in pairs(CONFIG) do parts[#parts + 1] = ("%s = %d"):format(k, v) end
  return "local CONFIG = {" .. table.concat(parts, ", ") .. "}\n"
end
local build = assert(load(config_src() .. BUILD .. "\nreturn build"))()

-- The child: trains 6 steps on a deterministic function of the micro-batch index, checkpointing every step
-- (keep=2), resuming when it finds checkpoints; writes the final weights (all rows, f32) and prints RESULT.
-- Arguments: out, seed=9, copies="0,2", all, full, bf16 (the base through a bf16 checkpoint), kill_at (SIGKILLs
-- itself in the callback of that step,
-- before its checkpoint), unfreeze_at / refreeze_at (model.norm.weight trains from one to the other).
local recipe = H.tmpfile(config_src() .. BUILD .. [[
local adept = require "adept"
local a = adept.args
local copies_of = {}
for l in tostring(a.copies or "0,2"):gmatch("%d+") do copies_of[#copies_of + 1] = tonumber(l) end
local m
if a.bf16 then
  -- bf16 frozen rows (docs/model.md, Precision): the base written as bf16 and loaded back, so the frozen
  -- matrices stay 16-bit and only the copies get fp32 masters
  local base = adept.model(CONFIG, {seed = tonumber(a.seed or 9)})
  base:save(a.out .. "/base16", {dtype = "bf16"})
  m = adept.load(a.out .. "/base16")
  local copies = m:expand(copies_of, {init = "identity"})
  m:freeze("all")
  for _, l in ipairs(copies) do m:unfreeze("^model%.layers%." .. l .. "%.") end
else
  m = build(adept, tonumber(a.seed or 9), copies_of, a.all)
end
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
every[1] = function(ctx)
  if ctx.step == a.unfreeze_at then ctx.model:unfreeze("^model%.norm%.weight$") end
  if ctx.step == a.refreeze_at then ctx.model:freeze("^model%.norm%.weight$") end
  if ctx.step == a.kill_at then os.execute("kill -9 " .. adept.getpid()) end
end
local r = adept.train{model = m, optimizer = opt, data = micro, steps = 6, every = every, progress = false,
  checkpoint = {dir = a.out .. "/ckpt", every = 1, keep = 2, full = a.full}, resume = true,
  log = a.out .. "/metrics.jsonl"}
adept.save_weights(m, a.out .. "/final.safetensors")
print(("RESULT steps=%d resumed_from=%s"):format(r.steps, tostring(r.resumed_from)))
]])

local function run(args)
  return H.run("timeout 120 " .. exe .. " " .. recipe .. " " .. args)
end

-- header (name -> {dtype, shape, data_offsets}), metadata and data section of a safetensors file
local function header(path)
  local data = slurp(path)
  local n = string.unpack("<I8", data)
  local h = adept.json.decode(data:sub(9, 8 + n))
  local meta = h.__metadata__
  h.__metadata__ = nil
  return h, meta, data:sub(9 + n)
end

local function tensor_bytes(path, name)
  local h, _, data = header(path)
  local e = assert(h[name], name .. " not in " .. path)
  return data:sub(e.data_offsets[1] + 1, e.data_offsets[2])
end

local function losses(out)
  local t = {}
  for line in io.lines(out .. "/metrics.jsonl") do
    local o = adept.json.decode(line)
    if o.type == "train" then t[o.step] = o.loss end
  end
  return t
end

local function names_of(h)
  local t = {}
  for name in pairs(h) do t[#t + 1] = name end
  table.sort(t)
  return t
end

local function sorted(list)
  local t = {table.unpack(list)}
  table.sort(t)
  return t
end

-- the rows a run of `build` trains: those of the copies (layer indices after expansion)
local function copy_rows(m, copies)
  local want = {}
  for _, p in ipairs(m:params()) do
    for _, l in ipairs(copies) do
      if p.name:find("model.layers." .. l .. ".", 1, true) == 1 then want[#want + 1] = p.name end
    end
  end
  table.sort(want)
  return want
end

describe("an ADEPT-style run (expanded layers, only the copies train)", function()
  local ref
  setup(function()
    ref = tmpdir()
    local out, ok = run("out=" .. ref)
    assert.is_true(ok, out)
  end)

  it("checkpoints only the copies' rows, in f32, with the identity of the base", function()
    local c = ref .. "/ckpt/step_00000006"
    local files = sorted(adept.fs.list(c))
    assert.same({"manifest.json", "rows.safetensors", "trainer_state.safetensors"}, files)
    local m, copies = build(adept, 9, {0, 2})
    local want = copy_rows(m, copies)
    assert.equals(18, #want) -- 2 copies x 9 rows
    local h, meta = header(c .. "/rows.safetensors")
    assert.same(want, names_of(h))
    -- the size: exactly the copies' values in f32, nothing else
    local bytes, expect = 0, 0
    for _, p in ipairs(m:params()) do
      if h[p.name] then
        assert.equals("F32", h[p.name].dtype)
        assert.same(p.shape, h[p.name].shape)
        expect = expect + 4 * p.numel
      end
    end
    for _, e in pairs(h) do bytes = bytes + e.data_offsets[2] - e.data_offsets[1] end
    assert.equals(expect, bytes)
    local total = 0
    for _, p in ipairs(m:params()) do total = total + 4 * p.numel end
    assert.is_true(bytes < total / 2, ("rows %d bytes of a %d-byte model"):format(bytes, total))
    -- the contents: the trained values (the final weights of the run, bitwise)
    for _, name in ipairs(want) do
      assert.is_true(tensor_bytes(c .. "/rows.safetensors", name) == tensor_bytes(ref .. "/final.safetensors", name), name)
    end
    -- the metadata: the rows and the identity of the others, computed here from a fresh build of the base
    local rec = adept.json.decode(meta.checkpoint)
    assert.same(want, sorted(rec.rows))
    local held = {}
    for _, n in ipairs(want) do held[n] = true end
    local base, n = ckpt.base_identity(m, held)
    assert.equals(base, rec.base)
    assert.equals(#m:params() - #want, n)
    assert.equals(n, rec.base_rows)
    -- sealed: the manifest lists the rows file with its checksum, and the checkpoint verifies
    local man = adept.json.read(c .. "/manifest.json")
    local listed = {}
    for _, f in ipairs(man.files) do listed[f.name] = f.sha256 end
    assert.equals(adept.fs.sha256(c .. "/rows.safetensors"), listed["rows.safetensors"])
    assert.is_true(adept.fs.checkpoint_verify(c, 6, 6))
  end)

  it("killed and resumed, ends with bitwise the same weights and losses as the uninterrupted run", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " kill_at=4")
    assert.is_false(ok, out)
    local kept = {}
    for _, c in ipairs(ckpt.list(d .. "/ckpt")) do kept[#kept + 1] = c.name end
    assert.same({"step_00000002", "step_00000003"}, kept)
    out, ok = run("out=" .. d)
    assert.is_true(ok, out)
    assert.matches("RESULT steps=6 resumed_from=" .. d .. "/ckpt/step_00000003", out, 1, true)
    assert.is_true(slurp(ref .. "/final.safetensors") == slurp(d .. "/final.safetensors"), "final weights differ")
    local a, b = losses(ref), losses(d)
    for s = 1, 6 do assert.equals(a[s], b[s], "loss of step " .. s) end
  end)

  it("over bf16 frozen rows: checkpoints the copies' fp32 masters and resumes bitwise after a kill", function()
    local whole, d = tmpdir(), tmpdir()
    local out, ok = run("out=" .. whole .. " bf16=true")
    assert.is_true(ok, out)
    local h = header(whole .. "/ckpt/step_00000006/rows.safetensors")
    assert.equals(18, #names_of(h))
    for _, e in pairs(h) do assert.equals("F32", e.dtype) end
    out, ok = run("out=" .. d .. " bf16=true kill_at=4")
    assert.is_false(ok, out)
    out, ok = run("out=" .. d .. " bf16=true")
    assert.is_true(ok, out)
    assert.matches("resumed_from=" .. d .. "/ckpt/step_00000003", out, 1, true)
    assert.is_true(slurp(whole .. "/final.safetensors") == slurp(d .. "/final.safetensors"), "final weights differ")
    local a, b = losses(whole), losses(d)
    for s = 1, 6 do assert.equals(a[s], b[s], "loss of step " .. s) end
    -- the bf16 run is another base than the fp32 one: its checkpoints do not resume there
    out, ok = run("out=" .. d)
    assert.is_false(ok, out)
    assert.matches("base", out, 1, true)
  end)

  it("refuses to resume onto another base, naming the checkpoint and both identities, and loads nothing", function()
    local c = ref .. "/ckpt/step_00000006"
    local _, meta = header(c .. "/rows.safetensors")
    local rec = adept.json.decode(meta.checkpoint)
    local before = slurp(c .. "/rows.safetensors")
    -- another seed: the same structure, other frozen weights
    local out, ok = run("out=" .. ref .. " seed=10")
    assert.is_false(ok, out)
    local other = build(adept, 10, {0, 2})
    local held = {}
    for _, n in ipairs(rec.rows) do held[n] = true end
    local theirs = ckpt.base_identity(other, held)
    assert.are_not.equals(rec.base, theirs)
    assert.matches("checkpoint " .. c .. " holds 18 trained rows for base " .. rec.base, out, 1, true)
    assert.matches("the model this recipe built is base " .. theirs, out, 1, true)
    assert.no.matches("RESULT", out, 1, true)
    -- other surgery: the copies of other layers (other names and shapes in the table)
    out, ok = run("out=" .. ref .. " copies=0,1")
    assert.is_false(ok, out)
    assert.matches("another base model, seed or surgery", out, 1, true)
    -- nothing was written over the checkpoint
    assert.is_true(before == slurp(c .. "/rows.safetensors"))
  end)

  it("falls back from a rows file changed after it was written (the manifest covers it)", function()
    local e = tmpdir()
    local out, ok = run("out=" .. e .. " kill_at=4")
    assert.is_false(ok, out)
    local w = e .. "/ckpt/step_00000003/rows.safetensors"
    local data = slurp(w)
    local at = #data - 3
    spit(w, data:sub(1, at - 1) .. string.char((data:byte(at) + 1) % 256) .. data:sub(at + 1))
    out, ok = run("out=" .. e)
    assert.is_true(ok, out)
    assert.matches("step_00000003 (rows.safetensors does not match its SHA-256", out, 1, true)
    assert.matches("RESULT steps=6 resumed_from=" .. e .. "/ckpt/step_00000002", out, 1, true)
    assert.is_true(slurp(ref .. "/final.safetensors") == slurp(e .. "/final.safetensors"), "final weights differ")
  end)
end)

describe("rows a callback unfreezes", function()
  it("are held from then on, after they are frozen again too, and resume exactly", function()
    local ref, d = tmpdir(), tmpdir()
    local out, ok = run("out=" .. ref .. " unfreeze_at=2 refreeze_at=4")
    assert.is_true(ok, out)
    -- step 2's checkpoint is written after the callback: the norm trains from step 3 on, and is held
    local h2 = header(ref .. "/ckpt/step_00000006/rows.safetensors")
    assert.is_not_nil(h2["model.norm.weight"], "model.norm.weight trained in steps 3-4 but is not in the checkpoint")
    -- killed after the norm was frozen again: its trained value must come back from the checkpoint
    out, ok = run("out=" .. d .. " unfreeze_at=2 refreeze_at=4 kill_at=5")
    assert.is_false(ok, out)
    out, ok = run("out=" .. d .. " unfreeze_at=2 refreeze_at=4")
    assert.is_true(ok, out)
    assert.matches("resumed_from=" .. d .. "/ckpt/step_00000004", out, 1, true)
    assert.is_true(slurp(ref .. "/final.safetensors") == slurp(d .. "/final.safetensors"), "final weights differ")
  end)
end)

describe("whole-model checkpoints", function()
  it("are written when every row trains (full_cpt): the checkpoint holds every row", function()
    local d = tmpdir()
    local out, ok = run("out=" .. d .. " all=true")
    assert.is_true(ok, out)
    local c = d .. "/ckpt/step_00000006"
    assert.is_falsy(adept.fs.exists(c .. "/rows.safetensors"))
    local m = build(adept, 9, {0, 2}, true)
    local want = {}
    for _, p in ipairs(m:params()) do want[#want + 1] = p.name end
    table.sort(want)
    assert.same(want, names_of(header(c .. "/model.safetensors")))
    for _, name in ipairs(want) do
      assert.is_true(tensor_bytes(c .. "/model.safetensors", name) == tensor_bytes(d .. "/final.safetensors", name), name)
    end
  end)

  it("are written with checkpoint.full = true, and such a checkpoint resumes into a rows run exactly", function()
    local ref, d = tmpdir(), tmpdir()
    local out, ok = run("out=" .. ref)
    assert.is_true(ok, out)
    out, ok = run("out=" .. d .. " full=true kill_at=4")
    assert.is_false(ok, out)
    local c = d .. "/ckpt/step_00000003"
    assert.equals("file", adept.fs.exists(c .. "/model.safetensors"))
    assert.equals("file", adept.fs.exists(c .. "/config.json"))
    -- resumed without full: loads the whole model, then writes rows checkpoints
    out, ok = run("out=" .. d)
    assert.is_true(ok, out)
    assert.matches("resumed_from=" .. c, out, 1, true)
    assert.equals("file", adept.fs.exists(d .. "/ckpt/step_00000006/rows.safetensors"))
    assert.is_true(slurp(ref .. "/final.safetensors") == slurp(d .. "/final.safetensors"), "final weights differ")
  end)

  it("refuses a checkpoint.full that is not a boolean, and names full among the options", function()
    local m = build(adept, 9, {0})
    local opt = adept.adamw(m, {lr = 1e-2})
    local ok, err = pcall(adept.train, {model = m, optimizer = opt, data = {{{1, 2, 3}}}, steps = 1, progress = false,
      checkpoint = {dir = tmpdir(), full = "yes"}})
    assert.is_false(ok)
    assert.matches("checkpoint.full must be a boolean", err, 1, true)
    ok, err = pcall(adept.train, {model = m, optimizer = opt, data = {{{1, 2, 3}}}, steps = 1, progress = false,
      checkpoint = {dir = tmpdir(), fulll = true}})
    assert.is_false(ok)
    assert.matches("unknown checkpoint option 'fulll' (dir, every, keep, full)", err, 1, true)
  end)
end)

describe("the rows file", function()
  it("hashes a row as its f32 bytes and refuses tensors its metadata does not list", function()
    local m = build(adept, 9, {0})
    local d = tmpdir()
    local p = d .. "/r.safetensors"
    adept.save_rows(m, p, {"model.norm.weight", "model.layers.1.mlp.up_proj.weight"}, string.rep("0", 64), 3)
    for _, name in ipairs{"model.norm.weight", "model.layers.1.mlp.up_proj.weight"} do
      assert.equals(adept.sha256(tensor_bytes(p, name)), adept.row_sha256(m, name))
    end
    -- drop one name from the metadata's list: the file is refused naming the unlisted tensor
    local data = slurp(p)
    local n = string.unpack("<I8", data)
    local h = adept.json.decode(data:sub(9, 8 + n))
    local rec = adept.json.decode(h.__metadata__.checkpoint)
    table.remove(rec.rows, 1)
    h.__metadata__.checkpoint = adept.json.encode(rec)
    local text = adept.json.encode(h)
    text = text .. string.rep(" ", (8 - #text % 8) % 8)
    spit(p, string.pack("<I8", #text) .. text .. data:sub(9 + n))
    local ok, err = pcall(adept.read_rows, p, m)
    assert.is_false(ok)
    assert.matches("is not listed in the \"checkpoint\" metadata", err, 1, true)
    -- a row of another shape than the model's
    adept.save_rows(m, p, {"model.norm.weight"}, string.rep("0", 64), 3)
    local small = adept.model({vocab_size = 29, hidden_size = 8, intermediate_size = 24, num_hidden_layers = 3,
                               num_attention_heads = 2, num_key_value_heads = 1})
    ok, err = pcall(adept.read_rows, p, small, true)
    assert.is_false(ok)
    assert.matches("row model.norm.weight is [16], the model's is [8]", err, 1, true)
    ok, err = pcall(adept.save_rows, m, p, {"model.nope"}, string.rep("0", 64), 3)
    assert.is_false(ok)
    assert.matches("model.nope is not a parameter of the model", err, 1, true)
  end)
end)
