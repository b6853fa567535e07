-- The Lua API on the "cuda" device against the CPU: tensors on the device, models from a config and (with
-- ../shared) stories260K loaded on both, logits, loss, greedy generation, importance -> expand -> adept.train with
-- decoupled LR scales, checkpoints resumed across devices both ways, HF directories saved from the device.
-- Run by adeptlua (no busted: the GPU machine has neither lua5.4 nor busted), registered twice (cmake/tests.cmake):
--   on the fake device (build/tests/adeptlua-fakecuda): the CPU kernels over protected memory, so every result
--     must be BITWISE the CPU's, and any host read of device memory kills the process;
--   on a GPU (build/adeptlua, label cuda, tests/device/run): within the bounds derived in tests/unit/test_cuda_model.c.
-- Exits 77 (skipped) when no backend serves "cuda". Prints one line per check; exits 1 on any failure.
local adept = require "adept"

local backend, why = adept.cuda.backend()
if not backend then
  print("skip: no CUDA device: " .. tostring(why))
  os.exit(77)
end
local exact = backend == "test-device"
print(("device_spec: backend %s, %s comparisons"):format(backend, exact and "bitwise" or "toleranced"))

-- Bounds on a GPU (tests/unit/test_cuda_model.c): each kernel agrees with the CPU to ~1e-6 normwise and a forward
-- pass chains ~30 of them: 1e-4 for logits, losses and mask-out; gradients chain them twice: 2e-4; 1 - cos of
-- close vectors loses digits to cancellation: 1e-3 for block influence; after AdamW the weight CHANGES carry the
-- relative error of normalised gradients: 1e-3. A value passed through a saved file is exact on both.
local TOL = {model = 1e-4, grad = 2e-4, influence = 1e-3, step = 1e-3, generation_exact = true}
-- bf16 frozen weights: both devices round the activations to bf16 before each frozen product, but an fp32 sum in
-- another order can put an activation on the other side of a bf16 rounding midpoint, moving it by 2^-8 of itself:
-- the issue's bound for the bf16 path, 1e-2 normwise, and greedy tokens may part at a near tie.
local TOL16 = {model = 1e-2, grad = 1e-2, influence = 1e-2, step = 1e-2, generation_exact = false}

local failures, checks = 0, 0
-- On a GPU the lines start with "cuda-check ", which tests/device/run collects into its table.
local function check(ok, what, detail)
  checks = checks + 1
  if not ok then failures = failures + 1 end
  if exact then
    print((ok and "ok    " or "FAIL  ") .. what .. (detail and ("  " .. detail) or ""))
  else
    print(("cuda-check lua: %-60s %s %s"):format(what, detail or "", ok and "ok" or "FAIL"))
  end
end

local function flatten(x, out)
  out = out or {}
  if type(x) == "number" then out[#out + 1] = x; return out end
  if type(x) == "userdata" then return flatten(x:table(), out) end
  for _, v in ipairs(x) do flatten(v, out) end
  return out
end

-- bitwise on the fake device (every element ==, NaN never equal); on a GPU ||a - b|| / ||b|| <= tol
-- (tol nil: bitwise on both, for values that went through files or pure copies)
local function compare(what, dev, cpu, tol)
  local a, b = flatten(dev), flatten(cpu)
  if #a ~= #b then return check(false, what, ("%d values against %d"):format(#a, #b)) end
  if exact or not tol then
    local bad = 0
    for i = 1, #a do if a[i] ~= b[i] then bad = bad + 1 end end
    return check(bad == 0, what, ("%d values, %d differ"):format(#a, bad))
  end
  local d2, n2 = 0, 0
  for i = 1, #a do d2 = d2 + (a[i] - b[i]) ^ 2; n2 = n2 + b[i] ^ 2 end
  local rel = n2 > 0 and math.sqrt(d2 / n2) or math.sqrt(d2)
  return check(rel <= tol, what, ("%d values, relative error %.3g (bound %g)"):format(#a, rel, tol))
end

local function compare_params(what, md, mc, tol)
  local dv, cv = {}, {}
  for _, name in ipairs(mc:param_names()) do
    flatten(md:param(name), dv)
    flatten(mc:param(name), cv)
  end
  compare(what, dv, cv, tol)
end

local function raises(fn, pattern, what)
  local ok, err = pcall(fn)
  check(not ok and tostring(err):find(pattern, 1, true) ~= nil, what, ok and "no error" or tostring(err))
end

local tmp = os.tmpname()
os.remove(tmp)
adept.fs.mkdir_p(tmp)

-- ---- tensors on the device -----------------------------------------------------------------------------
do
  local h = adept.tensor({{1, 2, 3}, {4, 5, 6}})
  local d = h:to("cuda")
  check(d:device() == "cuda" and h:device() == "cpu", "t:to('cuda') copies to the device")
  check(d:get(2, 3) == 6, "t:get reads one element of a device tensor")
  d:set(-7, 1, 2)
  check(h:get(1, 2) == 2 and d:get(1, 2) == -7, "t:set writes into the device copy only")
  local back = d:to("cpu")
  check(back:device() == "cpu", "t:to('cpu') copies back")
  compare("device tensor values through :table()", d, {{1, -7, 3}, {4, 5, 6}})
  local sq = (d * 2 + 1):abs()
  check(sq:device() == "cuda", "ops on a device tensor give a device tensor")
  compare("ops on the device", sq, {{3, 13, 7}, {9, 11, 13}})
  check(d:sum() == 12 and d:max() == 6, "reductions of a device tensor")
  compare("sum over a dimension on the device", d:sum(2), {-3, 15})
  local vals, idx = d:topk(2)
  check(vals:device() == "cuda" and idx[1] == 6 and idx[2] == 5, "topk of a device tensor")
  check(d:to("bf16"):device() == "cuda" and d:to("bf16"):dtype() == "bf16", "dtype conversion stays on the device")
  check(tostring(d):find("device=cuda", 1, true) ~= nil, "tostring names the device", tostring(d))
  check(d:clone():device() == "cuda", "clone stays on the device")
  raises(function() return d + h end, "different devices", "mixing devices in an op is an error")
  adept.save_tensors(tmp .. "/t.safetensors", {d = d})
  compare("save_tensors writes a device tensor", adept.load_tensors(tmp .. "/t.safetensors").d, {{1, -7, 3}, {4, 5, 6}}, nil)
  raises(function() return h:to("gpu") end, "or a device: cpu, cuda", "an unknown device name is an error")
end

-- ---- device options --------------------------------------------------------------------------------------
local cfg = {vocab_size = 64, hidden_size = 32, intermediate_size = 48, num_hidden_layers = 4, num_attention_heads = 4,
             num_key_value_heads = 2, max_position_embeddings = 128, rms_norm_eps = 1e-5}
raises(function() return adept.model(cfg, {device = "gpu"}) end, "option 'device': unknown device 'gpu'",
  "adept.model: an unknown device names the option")
raises(function() return adept.load(tmp, {device = "tpu"}) end, "option 'device': unknown device 'tpu'",
  "adept.load: an unknown device names the option")
do
  local saved = adept.default_device
  adept.default_device = "cuda"
  check(adept.model(cfg, {seed = 1}):device() == "cuda", "adept.model follows adept.default_device")
  check(adept.model(cfg, {seed = 1, device = "cpu"}):device() == "cpu", "opts.device overrides adept.default_device")
  -- precision: bf16 by default on the device (mixed precision, how GPU training runs), f32 on the cpu
  check(adept.model(cfg, {seed = 1}):precision() == "bf16", "adept.model on cuda defaults to precision bf16")
  check(adept.model(cfg, {seed = 1, device = "cpu"}):precision() == "f32", "adept.model on the cpu defaults to f32")
  adept.default_device = "nowhere"
  raises(function() return adept.model(cfg) end, "adept.default_device: unknown device 'nowhere'",
    "a bad adept.default_device names itself")
  adept.default_device = saved
end

-- weights holding a NaN are refused on the device too (the check runs there), naming the tensor
do
  local m = adept.model(cfg, {seed = 2, device = "cpu"})
  local w = m:param("model.layers.2.mlp.up_proj.weight"):clone()
  w:set(0 / 0, 3, 4)
  m:set_param("model.layers.2.mlp.up_proj.weight", w)
  m:save(tmp .. "/nan")
  raises(function() return adept.load(tmp .. "/nan", {device = "cuda"}) end,
    "tensor model.layers.2.mlp.up_proj.weight holds 1 non-finite value (the first at flat index 67",
    "adept.load on the device refuses a NaN, naming the tensor")
  local ok = adept.load(tmp .. "/nan", {device = "cuda", allow_nonfinite = true, precision = "f32"})
  check(ok:device() == "cuda" and ok:param("model.layers.2.mlp.up_proj.weight"):get(3, 4) ~= ok:param(
    "model.layers.2.mlp.up_proj.weight"):get(3, 4), "allow_nonfinite loads it on the device")
  local md = adept.model(cfg, {seed = 2, device = "cuda", precision = "f32"})
  md:set_param("model.layers.2.mlp.up_proj.weight", w:to("cuda")) -- a device tensor into a device model
  check(md:param("model.layers.2.mlp.up_proj.weight"):get(3, 4) ~= md:param("model.layers.2.mlp.up_proj.weight"):get(3, 4),
    "set_param from a device tensor")
end

-- ---- one model on both devices, through the ADEPT pipeline ------------------------------------------------
local function batches_of(V, n, B, T, seed)
  local out = {}
  local x = seed
  for k = 1, n do
    local rows = {}
    for b = 1, B do
      local row = {}
      for t = 1, T + 1 do
        x = (x * 1103515245 + 12345) % 2147483648
        row[t] = x % V
      end
      rows[b] = row
    end
    out[k] = adept.tensor(rows, "i32")
  end
  return out
end

-- tol: the bounds on a GPU (TOL, or TOL16 for bf16 frozen weights and bf16 products). Both models run at one
-- precision, which the checkpoints resumed across devices keep.
local function pipeline(label, mc, md, V, prompt, tol)
  local TOL = tol or TOL
  local precision = mc:precision()
  print("-- " .. label .. " (precision " .. precision .. ")")
  check(md:device() == "cuda" and mc:device() == "cpu", label .. ": models on their devices")
  check(md:precision() == precision, label .. ": the same precision on both devices")
  compare_params(label .. ": weights equal after loading", md, mc, nil)
  local probe = batches_of(V, 2, 2, 16, 7)
  local train_data = batches_of(V, 3, 2, 16, 11)
  local ids = probe[1]:table()[1]
  compare(label .. ": logits", md:logits(ids), mc:logits(ids), TOL.model)
  compare(label .. ": loss", {(md:loss(probe[1]))}, {(mc:loss(probe[1]))}, TOL.model)
  md:loss_and_grad(probe[2]); mc:loss_and_grad(probe[2])
  local name = "model.layers.1.mlp.down_proj.weight"
  compare(label .. ": a gradient read from the device", md:grad(name), mc:grad(name), TOL.grad)
  md:zero_grad(); mc:zero_grad()
  local hd, hc = md:hidden_states(ids), mc:hidden_states(ids)
  compare(label .. ": hidden states", hd[#hd], hc[#hc], TOL.model)
  local gd = md:generate(prompt, {max_tokens = 60, stop = false})
  local gc = mc:generate(prompt, {max_tokens = 60, stop = false})
  if TOL.generation_exact or exact then
    compare(label .. ": greedy generation, 60 tokens", gd, gc, nil) -- the same ids, also on a GPU (issue 12)
  else
    local same = 0
    while same < #gc and gd[same + 1] == gc[same + 1] do same = same + 1 end
    print(("cuda-info lua: %s: greedy generation agrees on its first %d of %d tokens (bf16 products: a near tie "
      .. "may break the other way)"):format(label, same, #gc))
  end

  -- stage 1: layer importance, then identity copies of the least important layers
  local sd = adept.importance.layers(md, probe, {metric = "mask_out"})
  local sc = adept.importance.layers(mc, probe, {metric = "mask_out"})
  local ld, lc = {}, {}
  for l = 0, mc:num_layers() - 1 do ld[#ld + 1], lc[#lc + 1] = sd[l], sc[l] end
  compare(label .. ": mask-out importance", ld, lc, TOL.model)
  local bd = adept.importance.layers(md, probe, {metric = "block_influence"})
  local bc = adept.importance.layers(mc, probe, {metric = "block_influence"})
  ld, lc = {}, {}
  for l = 0, mc:num_layers() - 1 do ld[#ld + 1], lc[#lc + 1] = bd[l], bc[l] end
  compare(label .. ": block-influence importance", ld, lc, TOL.influence)
  -- on a GPU close scores may order differently: both models expand the CPU's choice there
  local pick = adept.select.least_important(exact and sd or sc, 1)
  local copies_d = md:expand(pick, {init = "identity"})
  local copies_c = mc:expand(adept.select.least_important(sc, 1), {init = "identity"})
  check(copies_d[1] == copies_c[1], label .. ": the same layer copied", ("%d and %d"):format(copies_d[1], copies_c[1]))
  compare_params(label .. ": weights after expand", md, mc, TOL.model)
  for _, m in ipairs({md, mc}) do
    m:freeze("all")
    m:unfreeze("^model%.layers%." .. copies_c[1] .. "%.")
  end

  -- stage 2: decoupled per-row LR scales from unit importance, then adept.train with checkpoints
  local ud = adept.importance.units(md, probe, {granularity = "row"})
  local uc = adept.importance.units(mc, probe, {granularity = "row"})
  local qd, qc = {}, {}
  for n, s in pairs(uc) do flatten(ud[n], qd); flatten(s, qc) end
  compare(label .. ": unit importance (rows)", qd, qc, TOL.grad)
  local scales_d = adept.lr.decoupled(exact and ud or uc)
  local scales_c = adept.lr.decoupled(uc)
  local before = {}
  for _, n in ipairs(mc:param_names()) do before[n] = mc:param(n):table() end
  local function run(m, scales, dir, steps, opt)
    opt = opt or adept.adamw(m, {lr = 1e-2, weight_decay = 0.1})
    if scales then opt:set_lr_scales(scales) end
    -- full = true: the checkpoints are loaded below as HF models on the other device, which only whole-model
    -- checkpoints are (a rows checkpoint holds the copy's rows alone; those are checked after this)
    return adept.train{model = m, optimizer = opt, data = train_data, steps = steps, batch_size = 2, clip = 1.0,
                       progress = false, checkpoint = {dir = dir, every = 3, full = true}, resume = true}, opt
  end
  local rd = run(md, scales_d, tmp .. "/" .. label .. "-ckpt-cuda", 3)
  local rc = run(mc, scales_c, tmp .. "/" .. label .. "-ckpt-cpu", 3)
  compare(label .. ": adept.train loss after 3 steps", {rd.loss}, {rc.loss}, TOL.model)
  local dd, dc = {}, {}
  for _, n in ipairs(mc:param_names()) do
    local b, vd, vc = flatten(before[n]), flatten(md:param(n)), flatten(mc:param(n))
    for i = 1, #b do dd[#dd + 1], dc[#dc + 1] = vd[i] - b[i], vc[i] - b[i] end
  end
  compare(label .. ": weight changes over 3 steps", dd, dc, TOL.step)

  -- rows checkpoints across devices: a frozen row hashes the same on both (the base identity a resume checks),
  -- and the trained rows written from the device load into the cpu model as they are on the device
  local frozen = "model.layers.0.mlp.up_proj.weight"
  check(adept.row_sha256(md, frozen) == adept.row_sha256(mc, frozen), label .. ": a frozen row's digest on both devices")
  local trained = {}
  for _, n in ipairs(mc:param_names()) do if n:find("^model%.layers%." .. copies_c[1] .. "%.") then trained[#trained + 1] = n end end
  local rows_file = tmp .. "/" .. label .. "-rows.safetensors"
  adept.save_rows(md, rows_file, trained, adept.row_sha256(md, frozen), 1)
  local mr = adept.load(rc.checkpoint, {device = "cpu"}) -- the cpu run at step 3; its trained rows replaced below
  adept.read_rows(rows_file, mr, true)
  local rd_rows, rr_rows = {}, {}
  for _, n in ipairs(trained) do flatten(md:param(n), rd_rows); flatten(mr:param(n), rr_rows) end
  compare(label .. ": trained rows written from the device, read on the cpu", rd_rows, rr_rows, 0)

  -- each checkpoint resumed on the other device for 2 more steps: the two continuations agree
  local cont_c = adept.load(rd.checkpoint, {device = "cpu", precision = precision})
  local cont_d = adept.load(rc.checkpoint, {device = "cuda", precision = precision})
  check(cont_c:device() == "cpu" and cont_d:device() == "cuda", label .. ": checkpoints load on the other device")
  compare_params(label .. ": checkpoint of the device run loaded on the cpu", cont_c, md, nil)
  compare_params(label .. ": checkpoint of the cpu run loaded on the device", cont_d, mc, nil)
  local ec = run(cont_c, nil, tmp .. "/" .. label .. "-ckpt-cuda", 5)
  local ed = run(cont_d, nil, tmp .. "/" .. label .. "-ckpt-cpu", 5)
  check(ec.resumed_from ~= nil and ed.resumed_from ~= nil and ec.steps == 5 and ed.steps == 5,
    label .. ": both runs resumed at step 3 and reached step 5")
  compare(label .. ": loss at step 5, device checkpoint on the cpu vs cpu checkpoint on the device", {ec.loss},
    {ed.loss}, TOL.model)
  compare_params(label .. ": weights at step 5 after the cross-device resumes", cont_d, cont_c, TOL.step)

  -- HF directories saved from the device load on the cpu (f32 exact; bf16 through the same rounding)
  local hf = tmp .. "/" .. label .. "-hf"
  md:save(hf, {dtype = "f32"}) -- f32: a bf16-loaded model saves in bf16 by default, rounding its trained masters
  compare_params(label .. ": HF directory saved from the device, loaded on the cpu", adept.load(hf, {device = "cpu"}), md, nil)
  md:save(hf .. "-bf16", {dtype = "bf16"})
  local viacpu = adept.load(hf, {device = "cpu"})
  viacpu:save(hf .. "-bf16-cpu", {dtype = "bf16"})
  compare_params(label .. ": bf16 save from the device equals the cpu's conversion",
    adept.load(hf .. "-bf16", {device = "cpu"}), adept.load(hf .. "-bf16-cpu", {device = "cpu"}), nil)
  compare_params(label .. ": a bf16 directory loaded on the device (widened on the host)",
    adept.load(hf .. "-bf16", {device = "cuda", precision = "f32"}), adept.load(hf .. "-bf16", {device = "cpu"}), nil)
  md:save(hf .. "-shards", {max_shard_bytes = 40000, dtype = "f32"})
  local sharded = adept.load(hf .. "-shards", {device = "cuda", precision = "f32"})
  check(adept.fs.exists(hf .. "-shards/model.safetensors.index.json") == "file" and sharded:device() == "cuda",
    label .. ": sharded save from the device loads on the device")
  compare_params(label .. ": sharded round trip on the device", sharded, md, nil)
  check(#sharded:expanded_layers() == 1 and sharded:expanded_layers()[1] == copies_c[1],
    label .. ": the expanded layer survives the device round trip")
end

do
  local mc = adept.model(cfg, {seed = 5, device = "cpu", init_std = 0.3})
  local md = adept.model(cfg, {seed = 5, device = "cuda", init_std = 0.3, precision = "f32"})
  pipeline("random", mc, md, cfg.vocab_size, {1, 5, 9})
end

-- precision bf16 (issue 12): every product of an fp32 weight rounds its operands to bf16 with fp32 accumulation,
-- the rows stay fp32 masters. The device model takes it by default; the cpu is asked for it. On the fake device
-- the CPU's own bf16 entries run, so the whole pipeline is bitwise the CPU's bf16 run; on a GPU the fp32 sums
-- run in another order: TOL16.
do
  local mc = adept.model(cfg, {seed = 5, device = "cpu", init_std = 0.3, precision = "bf16"})
  local md = adept.model(cfg, {seed = 5, device = "cuda", init_std = 0.3})
  local probe = batches_of(cfg.vocab_size, 1, 2, 16, 7)[1]
  local f32 = adept.model(cfg, {seed = 5, device = "cpu", init_std = 0.3, precision = "f32"})
  check(mc:loss(probe) ~= f32:loss(probe), "bf16 products: the loss differs from the f32 one (the operands were rounded)",
    ("%.9g against %.9g"):format(mc:loss(probe), f32:loss(probe)))
  pipeline("bf16-products", mc, md, cfg.vocab_size, {1, 5, 9}, TOL16)
end

-- bf16 frozen weights on the device: a bf16 HF directory loads with its matrices in bf16 on both devices (the w16
-- products: cuBLAS bf16 GEMMs on a GPU, the CPU's own on the fake device), and the pipeline runs over them
do
  local dir = tmp .. "/bf16-source"
  adept.model(cfg, {seed = 9, device = "cpu", init_std = 0.3}):save(dir, {dtype = "bf16"})
  local mc = adept.load(dir, {device = "cpu"})
  local md = adept.load(dir, {device = "cuda", precision = "f32"})
  local dc, dd = {}, {}
  for _, p in ipairs(mc:params()) do dc[#dc + 1] = p.dtype end
  for _, p in ipairs(md:params()) do dd[#dd + 1] = p.dtype end
  local matrices16 = 0
  for i = 1, #dc do if dc[i] == "bf16" and dd[i] == "bf16" then matrices16 = matrices16 + 1 end end
  check(table.concat(dd, ",") == table.concat(dc, ",") and matrices16 > 0,
    "bf16: the matrices stay bf16 on the device, as on the cpu", ("%d of %d tensors bf16"):format(matrices16, #dc))
  -- a loaded model starts all trainable, and a backward pass gives trainable rows fp32 masters: only layer 1
  -- trains before the expansion (the pipeline reads its gradient), so the other layers stay bf16 throughout
  for _, m in ipairs({mc, md}) do m:freeze("all"); m:unfreeze("^model%.layers%.1%.") end
  pipeline("bf16", mc, md, cfg.vocab_size, {1, 5, 9}, TOL16)
  local kept = 0
  for _, p in ipairs(md:params()) do if p.dtype == "bf16" then kept = kept + 1 end end
  check(kept > 0 and kept < matrices16, "bf16: the trained copy's rows became f32 masters, the frozen rows stayed bf16",
    ("%d bf16 tensors after training"):format(kept))
end

-- dtype "bf16" (2026-12-06): an fp32 checkpoint's matrices rounded to bf16 as they load, on the host, then uploaded:
-- the same rows on the device as the cpu's, bitwise (a pure conversion and copy), and as a bf16 directory of the
-- same model loads them (the same nearest-even rounding), so the same logits on one device
do
  local src = adept.model(cfg, {seed = 9, device = "cpu", init_std = 0.3})
  local d32, d16 = tmp .. "/f32-source", tmp .. "/bf16-of-f32"
  src:save(d32, {dtype = "f32"})
  src:save(d16, {dtype = "bf16"})
  local mc = adept.load(d32, {device = "cpu", dtype = "bf16"})
  local md = adept.load(d32, {device = "cuda", dtype = "bf16", precision = "f32"})
  local ref = adept.load(d16, {device = "cuda", precision = "f32"})
  local n16 = 0
  for _, p in ipairs(md:params()) do if p.dtype == "bf16" then n16 = n16 + 1 end end
  check(n16 > 0, "dtype bf16: an fp32 checkpoint's matrices are bf16 on the device", ("%d bf16 tensors"):format(n16))
  compare_params("dtype bf16: the rows on the device against the cpu's", md, mc, nil)
  compare("dtype bf16: logits against the bf16 directory's on the device", md:logits({{1, 5, 9, 2}}),
    ref:logits({{1, 5, 9, 2}}), nil)
end

local shared = os.getenv("ADEPT_SHARED") or "../shared"
local stories = shared .. "/models/stories260K"
if adept.fs.exists(stories .. "/stories260K.bin") then
  local mc = adept.load(stories, {device = "cpu"})
  local md = adept.load(stories, {device = "cuda", precision = "f32"})
  local tok = adept.tokenizer(stories)
  pipeline("stories260K", mc, md, mc.config.vocab_size, tok:encode("Once upon a time", {bos = true}))
else
  print("skip: stories260K parts: " .. stories .. " not found (set ADEPT_SHARED; the device machine has no ../shared)")
end

adept.fs.remove_tree(tmp)
print(("device_spec: %d checks, %d failed (backend %s)"):format(checks, failures, backend))
os.exit(failures == 0 and 0 or 1)
