-- LoRA (docs/lora.md): adapters as rows of the parameter table. The model is bitwise unchanged at the start,
-- only the adapters train, merge_lora folds them in, and bad options are refused naming the option.
local adept = require "adept"
local H = require "spec_helpers"

local BATCH = H.TINY_BATCH
local function model(extra) return H.tiny_model(extra, 3) end

local function values(t)
  local out = {}
  local function flat(x) if type(x) == "table" then for _, v in ipairs(x) do flat(v) end else out[#out + 1] = x end end
  flat(t:table())
  return out
end

-- fn fails with an error containing msg (bindings prefix the method's name)
local function fails(fn, msg)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error: " .. msg)
  assert.is_truthy(tostring(err):find(msg, 1, true), ("error %q does not contain %q"):format(tostring(err), msg))
end

local function base_rows(m)
  local snap = {}
  for _, p in ipairs(m:params()) do
    if p.kind ~= "lora_A" and p.kind ~= "lora_B" then snap[p.name] = values(m:param(p.name)) end
  end
  return snap
end

describe("m:add_lora", function()
  it("leaves the logits bitwise unchanged and adds PEFT-named rows of the right shapes", function()
    for _, extra in ipairs({{}, {architectures = {"Qwen3ForCausalLM"}, head_dim = 8}, {architectures = {"Qwen2ForCausalLM"}}}) do
      local m = model(extra)
      local before = values(m:logits(BATCH))
      m:add_lora{rank = 4, alpha = 8}
      assert.same(before, values(m:logits(BATCH)))
      assert.same({rank = 4, alpha = 8}, m:lora())
      assert.same({4, 16}, m:param("model.layers.0.self_attn.q_proj.lora_A.weight"):shape())
      local qd = m:param("model.layers.0.self_attn.q_proj.weight"):shape()[1]
      assert.same({qd, 4}, m:param("model.layers.0.self_attn.q_proj.lora_B.weight"):shape())
      assert.same({4, 24}, m:param("model.layers.2.mlp.down_proj.lora_A.weight"):shape())
      assert.same({16, 4}, m:param("model.layers.2.mlp.down_proj.lora_B.weight"):shape())
      local n_lora = 0
      for _, p in ipairs(m:params()) do
        if p.kind == "lora_A" or p.kind == "lora_B" then
          n_lora = n_lora + 1
          assert.is_true(p.trainable)
          assert.is_string(p.target)
        else
          assert.is_false(p.trainable, p.name)
        end
      end
      assert.equals(3 * 7 * 2, n_lora)
    end
  end)

  it("draws A from uniform(-1/sqrt(in), 1/sqrt(in)) and starts B at zero", function()
    local m = model()
    m:add_lora{rank = 8, alpha = 16, targets = {"gate_proj", "down_proj"}, layers = {1}, seed = 5}
    local a, lo, hi = values(m:param("model.layers.1.mlp.down_proj.lora_A.weight")), math.huge, -math.huge
    for _, v in ipairs(a) do lo, hi = math.min(lo, v), math.max(hi, v) end
    local bound = 1 / math.sqrt(24)
    assert.is_true(lo >= -bound and hi <= bound and hi - lo > bound) -- spread over the interval, not a constant
    for _, v in ipairs(values(m:param("model.layers.1.mlp.gate_proj.lora_B.weight"))) do assert.equals(0, v) end
    assert.has_error(function() m:param("model.layers.0.mlp.down_proj.lora_A.weight") end)
    assert.has_error(function() m:param("model.layers.1.self_attn.q_proj.lora_A.weight") end)
  end)

  it("trains only the adapters: base rows bitwise unchanged, loss goes down", function()
    local m = model()
    m:add_lora{rank = 4, alpha = 8}
    local base = base_rows(m)
    local opt = adept.adamw(m, {lr = 1e-2})
    local first, last
    for i = 1, 30 do
      m:zero_grad()
      local l = m:loss_and_grad(BATCH)
      if i == 1 then first = l end
      last = l
      opt:step()
    end
    assert.is_true(last < first - 0.1, ("loss %g -> %g"):format(first, last))
    assert.same(base, base_rows(m))
  end)

  it("merge_lora folds the adapters in: logits agree within float32 rounding, the rows are gone", function()
    local m = model()
    m:add_lora{rank = 4, alpha = 8}
    local opt = adept.adamw(m, {lr = 2e-2})
    for _ = 1, 10 do m:zero_grad(); m:loss_and_grad(BATCH); opt:step() end
    local unmerged = values(m:logits(BATCH))
    m:merge_lora()
    assert.is_nil(m:lora())
    for _, p in ipairs(m:params()) do assert.is_nil(p.name:match("lora")) end
    local merged = values(m:logits(BATCH))
    -- the merged weight W + s BA is rounded once to float32 and the product's summation order differs:
    -- a relative error of a few float32 ulps per layer through 3 layers and the head; logits are O(10)
    local worst, scale = 0, 0
    for i = 1, #merged do
      worst = math.max(worst, math.abs(merged[i] - unmerged[i]))
      scale = math.max(scale, math.abs(unmerged[i]))
    end
    assert.is_true(worst <= 64 * 2^-24 * 16 * math.max(scale, 1), ("max |diff| %g (scale %g)"):format(worst, scale))
    assert.is_true(worst < 1e-3)
    -- merging changed the function: the adapters had moved away from zero
    local fresh = values(model():logits(BATCH))
    local moved = 0
    for i = 1, #merged do moved = math.max(moved, math.abs(merged[i] - fresh[i])) end
    assert.is_true(moved > 1e-2)
  end)

  it("computes the same gradients with layers recomputed in backward", function()
    local function grads(recompute)
      local m = model()
      m:add_lora{rank = 2, alpha = 3, seed = 9}
      -- B non-zero so every adapter's A gets a gradient
      for _, p in ipairs(m:params()) do
        if p.kind == "lora_B" then m:set_param(p.name, adept.randn(p.shape, 4) * 0.1) end
      end
      m:set_recompute(recompute)
      m:zero_grad()
      m:loss_and_grad(BATCH)
      local g = {}
      for _, p in ipairs(m:params()) do if p.trainable then g[p.name] = values(m:grad(p.name)) end end
      return g
    end
    local kept = grads(false)
    assert.same(kept, grads(true))
    local nonzero = 0
    for _, v in ipairs(kept["model.layers.0.self_attn.q_proj.lora_A.weight"]) do if v ~= 0 then nonzero = nonzero + 1 end end
    assert.is_true(nonzero > 0)
  end)

  it("saves the merged HF directory without changing the model, and a PEFT adapter that loads back", function()
    local m = model()
    m:add_lora{rank = 4, alpha = 8, targets = {"q_proj", "v_proj", "down_proj"}, layers = {0, 2}}
    local opt = adept.adamw(m, {lr = 2e-2})
    for _ = 1, 5 do m:zero_grad(); m:loss_and_grad(BATCH); opt:step() end
    local logits = values(m:logits(BATCH))
    local dir = os.tmpname()
    os.remove(dir)
    m:save(dir .. "/merged")
    assert.same({rank = 4, alpha = 8}, m:lora()) -- not merged in place
    assert.same(logits, values(m:logits(BATCH)))
    local merged = adept.load(dir .. "/merged")
    for _, p in ipairs(merged:params()) do assert.is_nil(p.name:match("lora")) end
    local got, worst = values(merged:logits(BATCH)), 0
    for i = 1, #got do worst = math.max(worst, math.abs(got[i] - logits[i])) end
    assert.is_true(worst < 1e-4, "merged save differs by " .. worst)

    adept.lora.save_adapter(m, dir .. "/adapter", {base_model = "tiny"})
    local f = assert(io.open(dir .. "/adapter/adapter_config.json"))
    local config = adept.json.decode(f:read("a"))
    f:close()
    assert.equals("LORA", config.peft_type)
    assert.equals("CAUSAL_LM", config.task_type)
    assert.equals(4, config.r)
    assert.equals(8, config.lora_alpha)
    assert.equals(0, config.lora_dropout)
    assert.equals("none", config.bias)
    assert.equals("tiny", config.base_model_name_or_path)
    assert.same({"q_proj", "v_proj", "down_proj"}, config.target_modules)
    local tensors = adept.load_tensors(dir .. "/adapter/adapter_model.safetensors")
    local names = {}
    for name in pairs(tensors) do names[#names + 1] = name end
    table.sort(names)
    assert.equals(2 * 3 * 2, #names)
    assert.same({4, 16}, tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]:shape())
    assert.same({16, 4}, tensors["base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"]:shape())
    assert.is_nil(tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"])

    local base = model()
    adept.lora.load_adapter(base, dir .. "/adapter")
    assert.same(logits, values(base:logits(BATCH)))
    fails(function() adept.lora.save_adapter(model(), dir .. "/none") end, "the model has no LoRA adapters")
    fails(function() adept.lora.save_adapter(m, dir .. "/x", {base = "t"}) end, "unknown option 'base'")

    -- adept.save: the same two directories through one entry
    local function bytes(path) local g = assert(io.open(path, "rb")); local b = g:read("a"); g:close(); return b end
    adept.save(m, dir .. "/adapter2", {adapter = true, base_model = "tiny"})
    for _, name in ipairs{"adapter_config.json", "adapter_model.safetensors"} do
      assert.equals(bytes(dir .. "/adapter/" .. name), bytes(dir .. "/adapter2/" .. name), name)
    end
    adept.save(m, dir .. "/merged2")
    assert.equals(bytes(dir .. "/merged/model.safetensors"), bytes(dir .. "/merged2/model.safetensors"))
    assert.same({rank = 4, alpha = 8}, m:lora())
    fails(function() adept.save(m, dir .. "/y", {adapter = true, dtype = "bf16"}) end, "unknown option 'dtype'")
    fails(function() adept.save(m, dir .. "/y", {base_model = "t"}) end, "'base_model' goes with adapter = true")
    fails(function() adept.save(m, dir .. "/y", {adapter = 1}) end, "'adapter' must be a boolean")
    fails(function() adept.save(m, dir .. "/y", {dtpye = "f32"}) end, "dtpye")
    adept.fs.remove_tree(dir)
  end)

  it("refuses bad options naming them", function()
    local m = model()
    fails(function() m:add_lora{rank = 4, alpha = 8, rnak = 2} end, "rnak")
    fails(function() m:add_lora{alpha = 8} end, "add_lora: rank is required (a positive integer)")
    fails(function() m:add_lora{rank = 4} end,
      "add_lora: alpha is required (a positive number; the scale is alpha/rank)")
    fails(function() m:add_lora{rank = 4, alpha = 8, dropout = 0.1} end,
      "add_lora: dropout 0.1 is not implemented (only 0: adapter dropout would need a per-step mask kept for backward)")
    fails(function() m:add_lora{rank = 4, alpha = 8, targets = {"qproj"}} end,
      "add_lora: targets[1] = qproj is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")
    fails(function() m:add_lora{rank = 4, alpha = 8, layers = {3}} end,
      "add_lora: layers[1] must be a layer index in [0, 3)")
    fails(function() m:add_lora{rank = 4, alpha = -1} end, "add_lora: alpha must be a positive number, got -1")
    fails(function() m:merge_lora() end, "merge_lora: the model has no adapters")
    m:add_lora{rank = 2, alpha = 2}
    fails(function() m:add_lora{rank = 2, alpha = 2} end, "add_lora: the model has adapters already (rank 2)")
    fails(function() m:expand({0}) end, "expand: the model has LoRA adapters; merge_lora")
  end)
end)
