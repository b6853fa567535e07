-- bf16 frozen weights (DESIGN.md §2.9, docs/model.md "Precision"): what a bf16 checkpoint loaded with dtype "auto"
-- keeps in bf16 and what it widens, the memory that shows (m:memory(), adept.plan, the slabs' bytes), save and
-- expand on such a model, and the options. The numerics against float64 are tests/parity/test_bf16_frozen.py.
local adept = require "adept"
local H = require "spec_helpers"

local CFG = {vocab_size = 37, hidden_size = 32, intermediate_size = 48, num_hidden_layers = 4,
             num_attention_heads = 4, num_key_value_heads = 2, head_dim = 8, rms_norm_eps = 1e-6,
             architectures = {"Qwen3ForCausalLM"}}
local BATCH = {{1, 5, 7, 2, 9, 4, 3, 30}, {8, 8, 1, 0, 22, 5, 6, 36}}
local TRAIN = {inputs = {{1, 5, 7, 2, 9, 4, 3}, {8, 8, 1, 0, 22, 5, 6}}, targets = {{5, 7, 2, 9, 4, 3, 30}, {8, 1, 0, 22, 5, 6, 36}}}

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  return name .. "_bf16"
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function rm(dir) H.run("rm -rf '" .. dir .. "'") end

local function values(t)
  local out = {}
  local function flat(x) if type(x) == "table" then for _, v in ipairs(x) do flat(v) end else out[#out + 1] = x end end
  flat(t:table())
  return out
end

-- a random Qwen3-shaped model written as bf16 (untied unless told)
local function bf16_dir(extra)
  local cfg = {}
  for k, v in pairs(CFG) do cfg[k] = v end
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local dir = tmpdir()
  adept.model(cfg, {seed = 11, init_std = 0.2}):save(dir, {dtype = "bf16"})
  return dir
end

-- the slab bytes a set of rows takes: fp32 rows rounded up to 16 floats, 16-bit ones up to 32 values (64 bytes)
local function slab_bytes(m)
  local f32, b16 = 0, 0
  for _, p in ipairs(m:params()) do
    if p.dtype == "f32" then f32 = f32 + (p.numel + 15) // 16 * 64 else b16 = b16 + (p.numel + 31) // 32 * 64 end
  end
  return f32, b16
end

describe("bf16 frozen weights", function()
  it("keeps the matrices of a bf16 checkpoint in bf16, norms in fp32; dtype f32 widens everything", function()
    local dir = bf16_dir()
    local a, f = adept.load(dir), adept.load(dir, {dtype = "f32"})
    for _, p in ipairs(a:params()) do
      assert.equals(#p.shape == 2 and "bf16" or "f32", p.dtype, p.name)
    end
    for _, p in ipairs(f:params()) do assert.equals("f32", p.dtype, p.name) end
    assert.equals("bf16", a:param("model.layers.0.mlp.up_proj.weight"):dtype()) -- the row in its dtype, no copy
    -- the slabs hold exactly those rows: no fp32 copy of a bf16 row exists
    local f32, b16 = slab_bytes(a)
    local mem = a:memory()
    assert.equals(f32, mem.params_f32)
    assert.equals(b16, mem.params_16)
    assert.equals(f32 + b16, mem.params)
    assert.is_true(mem.params < 0.55 * f:memory().params)
    assert.equals(0, f:memory().params_16)
    -- widening bf16 is exact: the bf16 rows read as the f32 model's
    local w16 = a:param("model.layers.2.self_attn.o_proj.weight"):to("f32")
    assert.same(values(f:param("model.layers.2.self_attn.o_proj.weight")), values(w16))
    -- the tensor ops read a bf16 row through an exact f32 copy: a weight-magnitude metric needs no :to("f32")
    local name = "model.layers.1.mlp.down_proj.weight"
    assert.equals(f:param(name):norm(), a:param(name):norm())
    assert.equals(f:param(name):abs():sum(), a:param(name):abs():sum())
    assert.equals("f32", a:param(name):abs():dtype())
    assert.same(values(f:param(name):mul(f:param(name))), values(a:param(name):mul(f:param(name))))
    rm(dir)
  end)

  it("keeps bf16 matrices when a checkpoint stores its norms in f32", function()
    local dir = bf16_dir()
    local t = adept.load_tensors(dir .. "/model.safetensors")
    for name, v in pairs(t) do if #v:shape() == 1 then t[name] = v:to("f32") end end
    adept.save_tensors(dir .. "/model.safetensors", t)
    local m = adept.load(dir)
    assert.equals("bf16", m:param("model.layers.0.self_attn.q_proj.weight"):dtype())
    assert.equals("f32", m:param("model.layers.0.input_layernorm.weight"):dtype())
    assert.equals("f32", m.config.dtype) -- the checkpoint mixes dtypes: saving writes f32 unless told
    local plain = bf16_dir()
    assert.equals(adept.load(plain, {dtype = "f32"}):loss(BATCH), adept.load(dir, {dtype = "f32"}):loss(BATCH))
    rm(dir); rm(plain)
  end)

  it("gives fp32 masters only to rows that train when the gradient slab is laid", function()
    local dir = bf16_dir()
    local m = adept.load(dir)
    m:freeze("all")
    m:unfreeze("^model%.layers%.2%.")
    local before = m:memory()
    assert.equals(before.params_16, select(2, slab_bytes(m))) -- freezing alone widens nothing
    local opt = adept.adamw(m, {lr = 1e-3})                  -- lays the gradient slab
    for _, p in ipairs(m:params()) do
      local want = (#p.shape == 2 and not p.name:find("^model%.layers%.2%.")) and "bf16" or "f32"
      assert.equals(want, p.dtype, p.name)
    end
    local f32, b16 = slab_bytes(m)
    assert.equals(f32, m:memory().params_f32)
    assert.equals(b16, m:memory().params_16)
    -- a training step runs and moves only layer 2; frozen bf16 rows keep their bytes
    local head = m:param("lm_head.weight"):to("f32")
    m:loss_and_grad(TRAIN)
    opt:step()
    assert.same(values(head), values(m:param("lm_head.weight"):to("f32")))
    assert.equals("bf16", m:param("lm_head.weight"):dtype())
    -- a row once widened stays fp32 when frozen again
    m:freeze("all")
    assert.equals("f32", m:param("model.layers.2.mlp.up_proj.weight"):dtype())
    rm(dir)
  end)

  it("agrees with adept.plan: weights + masters are the slabs, for every trainable set", function()
    local dir = bf16_dir()
    local m = adept.load(dir)
    local p = adept.plan(dir, {trainable = "none", batch_size = 2, seq_len = 8})
    assert.equals(m:memory().params, p.weights + p.masters)
    assert.equals(0, p.masters)
    m:freeze("all")
    m:unfreeze("^model%.layers%.[13]%.")
    m:grad("model.layers.1.mlp.up_proj.weight") -- lays the gradient slab
    p = adept.plan(dir, {trainable = {1, 3}, batch_size = 2, seq_len = 8})
    local mem = m:memory()
    assert.equals(mem.params, p.weights + p.masters)
    assert.equals(mem.grads, p.grads)
    assert.is_true(p.masters > 0)
    -- f32: the plan of today
    local f = adept.load(dir, {dtype = "f32"})
    local pf = adept.plan(dir, {dtype = "f32", trainable = "none"})
    assert.equals(f:memory().params, pf.weights + pf.masters)
    assert.equals(pf.weights, adept.plan(CFG, {trainable = "none"}).weights)
    assert.is_true(p.total < adept.plan(dir, {trainable = {1, 3}, batch_size = 2, seq_len = 8, dtype = "f32"}).total)
    local ok, err = pcall(adept.plan, dir, {dtype = "int8"})
    assert.is_false(ok)
    assert.matches('dtype must be "auto", "f32", "bf16" or "f16", got \'int8\'', err)
    rm(dir)
  end)

  it("saves bf16 rows as they are: load -> save -> load is bitwise", function()
    local dir, dir2 = bf16_dir({tie_word_embeddings = true}), tmpdir()
    local m = adept.load(dir)
    m:save(dir2)
    assert.equals(read(dir .. "/model.safetensors"), read(dir2 .. "/model.safetensors"))
    local m2 = adept.load(dir2)
    assert.equals(m:loss(BATCH), m2:loss(BATCH))
    -- saved as f32 on request: the exact widening
    local dir3 = tmpdir()
    m:save(dir3, {dtype = "f32"})
    local f = adept.load(dir3)
    assert.equals("f32", f:param("model.embed_tokens.weight"):dtype())
    assert.same(values(m:param("model.embed_tokens.weight"):to("f32")), values(f:param("model.embed_tokens.weight")))
    rm(dir); rm(dir2); rm(dir3)
  end)

  it("expands a bf16 model with bitwise the same logits; the copies train with fp32 masters", function()
    local dir = bf16_dir()
    local m = adept.load(dir)
    local before = values(m:logits(BATCH))
    local copies = m:expand({1, 3})
    assert.same(before, values(m:logits(BATCH)))
    for _, c in ipairs(copies) do
      assert.equals("bf16", m:param(("model.layers.%d.self_attn.o_proj.weight"):format(c)):dtype())
    end
    m:freeze("all")
    for _, c in ipairs(copies) do m:unfreeze(("^model%%.layers%%.%d%%."):format(c)) end
    m:loss_and_grad(TRAIN)
    for _, p in ipairs(m:params()) do
      local copy = false
      for _, c in ipairs(copies) do copy = copy or p.layer == c end
      assert.equals((copy or #p.shape == 1) and "f32" or "bf16", p.dtype, p.name)
    end
    assert.same(before, values(m:logits(BATCH))) -- o_proj / down_proj of the copies are zero, gradients not applied
    rm(dir)
  end)

  it("rounds m:set_param into a bf16 row; merge_lora and load_weights widen the rows they write", function()
    local dir = bf16_dir()
    local m = adept.load(dir)
    local name = "model.layers.0.mlp.gate_proj.weight"
    local t = m:param(name):to("f32")
    t:set(1 + 2 ^ -10, 1, 1) -- not a bf16 value: rounds to 1
    m:set_param(name, t)
    assert.equals("bf16", m:param(name):dtype())
    assert.equals(1, m:param(name):get(1, 1))
    -- LoRA on bf16 weights: forward through bf16 rows plus fp32 adapters; merging widens the adapted rows
    m:add_lora{rank = 2, alpha = 4, targets = {"q_proj"}}
    local opt = adept.adamw(m, {lr = 1e-2})
    local before = m:loss_and_grad(TRAIN)
    opt:step()
    m:zero_grad()
    assert.is_true(m:loss(TRAIN) < before) -- the adapters train over frozen bf16 projections
    assert.equals("bf16", m:param("model.layers.0.self_attn.q_proj.weight"):dtype())
    m:merge_lora()
    assert.equals("f32", m:param("model.layers.0.self_attn.q_proj.weight"):dtype())
    assert.equals("bf16", m:param("model.layers.0.self_attn.k_proj.weight"):dtype())
    -- load_weights: an f32 tensor into a bf16 row widens it; a bf16 one is copied as it is
    local wpath = os.tmpname()
    adept.save_tensors(wpath, {["model.layers.1.mlp.down_proj.weight"] = m:param("model.layers.1.mlp.down_proj.weight"):to("f32")})
    local ok, err = pcall(adept.load_weights, m, {wpath})
    assert.is_false(ok) -- load_weights wants every row
    assert.matches("is missing", err)
    os.remove(wpath)
    rm(dir)
  end)

  it("refuses a bf16 checkpoint holding NaN, naming the tensor", function()
    local m = adept.model(CFG, {seed = 2, init_std = 0.2})
    local t = m:param("model.layers.1.self_attn.v_proj.weight")
    t:set(0 / 0, 1, 6)
    local dir = tmpdir()
    m:save(dir, {dtype = "bf16"})
    local ok, err = pcall(adept.load, dir)
    assert.is_false(ok)
    assert.matches("tensor model.layers.1.self_attn.v_proj.weight holds 1 non%-finite value %(the first at flat index 5", err)
    assert.equals("bf16", adept.load(dir, {allow_nonfinite = true}):param("model.layers.1.self_attn.v_proj.weight"):dtype())
    rm(dir)
  end)

  it("loads an f16 checkpoint the same way (widened blocks for sgemm: fp32 activations)", function()
    local dir = tmpdir()
    adept.model(CFG, {seed = 11, init_std = 0.2}):save(dir, {dtype = "f16"})
    local a, f = adept.load(dir), adept.load(dir, {dtype = "f32"})
    assert.equals("f16", a:param("model.layers.1.self_attn.q_proj.weight"):dtype())
    assert.equals("f16", a:param("lm_head.weight"):dtype())
    -- the same products in fp32 up to the summation order: K = 48 terms, 28 products, 2 K u each (u = 2^-24)
    local la, lf = values(a:logits(BATCH)), values(f:logits(BATCH))
    local worst, scale = 0, 0
    for i = 1, #lf do worst, scale = math.max(worst, math.abs(la[i] - lf[i])), math.max(scale, math.abs(lf[i])) end
    assert.is_true(worst <= 28 * 2 * 48 * 2 ^ -24 * scale, ("f16 vs f32 logits differ by %g of %g"):format(worst, scale))
    rm(dir)
  end)

  it("generates from bf16 rows: the batched and the single decoder agree, the first token is the logits' argmax", function()
    local dir = bf16_dir()
    local m = adept.load(dir)
    local prompts = {{1, 5, 7, 2}, {8, 8, 1, 0, 22, 5}, {3}}
    local got = m:generate_batch(prompts, {max_tokens = 6, stop = false})
    for r, p in ipairs(prompts) do
      local want = m:generate(p, {max_tokens = 6, stop = false})
      assert.same(want, got[r])
      local logits = m:logits({p}):table()[1]
      local last, best = logits[#p], 1
      for v = 2, #last do if last[v] > last[best] then best = v end end
      assert.equals(best - 1, want[1])
    end
    rm(dir)
  end)

  it("dtype bf16 keeps an fp32 checkpoint's matrices in bf16, rounded as saving in bf16 rounds them", function()
    -- the same random model written in fp32 and in bf16: dtype "bf16" on the first must give the second's rows
    -- (nearest even both ways) and so the same logits, bit for bit; norms stay fp32, and the rows that train
    -- widen from the bf16 values
    local dir32, dir16 = tmpdir(), tmpdir()
    local src = adept.model(CFG, {seed = 11, init_std = 0.2})
    src:save(dir32, {dtype = "f32"})
    src:save(dir16, {dtype = "bf16"})
    local b, ref = adept.load(dir32, {dtype = "bf16"}), adept.load(dir16)
    local refp = {}
    for _, p in ipairs(ref:params()) do refp[p.name] = p end
    local n16 = 0
    for _, p in ipairs(b:params()) do
      assert.equals(#p.shape == 2 and "bf16" or "f32", p.dtype, p.name)
      assert.equals(refp[p.name].dtype, p.dtype, p.name)
      if p.dtype == "bf16" then n16 = n16 + 1 end
      assert.same(values(ref:param(p.name)), values(b:param(p.name)), p.name)
    end
    assert.is_true(n16 > 0)
    assert.same(values(ref:logits(BATCH)), values(b:logits(BATCH)))
    local f32, b16 = slab_bytes(b)
    assert.equals(b:memory().params, f32 + b16)
    assert.is_true(b16 > f32) -- the matrices dominate, now at 2 bytes
    -- a bf16 checkpoint loads the same with "bf16" as with "auto"
    assert.same(values(ref:logits(BATCH)), values(adept.load(dir16, {dtype = "bf16"}):logits(BATCH)))
    -- an f16 checkpoint's matrices: each f16 value rounded to bf16 (t:to("bf16") of the exact widening)
    local dirh = tmpdir()
    src:save(dirh, {dtype = "f16"})
    local h, wide = adept.load(dirh, {dtype = "bf16"}), adept.load(dirh, {dtype = "f32"})
    for _, p in ipairs(h:params()) do
      if #p.shape == 2 then
        assert.equals("bf16", p.dtype, p.name)
        assert.same(values(wide:param(p.name):to("bf16")), values(h:param(p.name)), p.name)
      end
    end
    rm(dir32)
    rm(dir16)
    rm(dirh)
  end)

  it("dtype bf16 refuses a llama2.c checkpoint, naming the file and the dtypes it takes", function()
    local bin = H.shared("models/stories260K/stories260K.bin")
    if not bin then
      print("skipping: ../shared/models/stories260K not found")
      return
    end
    for _, path in ipairs({bin, (bin:gsub("/stories260K%.bin$", ""))}) do -- the file, and its directory
      local ok, err = pcall(adept.load, path, {dtype = "bf16"})
      assert.is_false(ok)
      assert.matches('stories260K.-: a llama2%.c checkpoint loads with dtype "auto" or "f32"', err)
    end
    assert.is_truthy(adept.load(bin, {dtype = "auto"}))
  end)

  it("refuses an unknown dtype option, naming it", function()
    local ok, err = pcall(adept.load, "/nonexistent", {dtype = "int8"})
    assert.is_false(ok)
    assert.matches('dtype must be "auto", "f32" or "bf16", got \'int8\'', err)
    assert.is_true(adept.w16_products() == "onednn" or adept.w16_products() == "sgemm")
    assert.equals("sgemm", adept.w16_products("f16"))
  end)
end)
