-- adept.importance: mask-out by resumed forward passes equals the naive skipped-layer losses, block influence
-- against the hidden states, gradient metrics restore the trainable set and clear gradients, padding excluded,
-- importance.json contents, and unit scores for stage 2.
local adept = require "adept"
local H = require "spec_helpers"

local CFG = {vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 4,
             num_attention_heads = 4, num_key_value_heads = 2, rms_norm_eps = 1e-5}
local PROBE = {
  {{1, 5, 7, 2, 9, 4, 3, 11}, {8, 8, 1, 0, 22, 5, 6, 28}},
  {inputs = {{3, 4, 5, 6, 7, 8, 9}, {2, 2, 2, 2, 1, 1, 1}}, targets = {{4, 5, 6, 7, 8, 9, 10}, {2, 2, 1, -1, -1, -1, -1}}},
}

local function model() return adept.model(CFG, {seed = 7, init_std = 0.4}) end

local function all_grads_zero(m)
  for _, name in ipairs(m:param_names()) do
    local g = m:grad(name)
    if g and g:abs():max() ~= 0 then return false, name end
  end
  return true
end

describe("adept.importance.layers", function()
  it("mask_out equals the naive skipped-layer loss increase and does fewer layer evaluations", function()
    local m = model()
    local base_sum, tokens = 0, 0
    for _, b in ipairs(PROBE) do local l, n = m:loss(b); base_sum = base_sum + l * n; tokens = tokens + n end
    local scores, rec = adept.importance.layers(m, PROBE, {metric = "mask_out"})
    for l = 0, 3 do
      local s = 0
      m:with_layers_skipped({l}, function()
        for _, b in ipairs(PROBE) do local x, n = m:loss(b); s = s + x * n end
      end)
      assert.near((s - base_sum) / tokens, scores[l], 1e-12)
    end
    -- bitwise per batch: the resumed pass does exactly the operations of the full skipped pass
    local r = m:mask_out(PROBE[1])
    for l = 0, 3 do
      local x, n = m:with_layers_skipped({l}, function() return m:loss(PROBE[1]) end)
      local y = r.skip_nll[l] / r.tokens
      assert.equals(n, r.tokens)
      assert.is_true(math.abs(x - y) <= 1e-15 * math.abs(x), ("layer %d: %.17g vs %.17g"):format(l, x, y))
    end
    -- L = 4: resumed 4 + 3 + 2 + 1 + 0 = 10 layer evaluations per batch, naive 4 + 4 * 3 = 16
    assert.equals(20, rec.details.layer_evals)
    assert.equals(32, rec.details.naive_layer_evals)
    assert.equals(tokens, rec.details.tokens)
    assert.is_false(adept.importance.layers(m, PROBE, {metric = "mask_out"})[0] ~= scores[0])
  end)

  it("mask_out_batches is the official code's mean over batches of each batch's mean loss increase", function()
    local m = model()
    -- PROBE's batches count 16 and 10 targets: the two averages differ
    local base, skip = 0, {}
    for _, b in ipairs(PROBE) do base = base + m:loss(b) / #PROBE end
    for l = 0, 3 do
      skip[l] = 0
      m:with_layers_skipped({l}, function()
        for _, b in ipairs(PROBE) do skip[l] = skip[l] + m:loss(b) / #PROBE end
      end)
    end
    local scores, rec = adept.importance.layers(m, PROBE, {metric = "mask_out_batches"})
    local token_weighted = adept.importance.layers(m, PROBE, {metric = "mask_out"})
    local differs = false
    for l = 0, 3 do
      assert.near(skip[l] - base, scores[l], 1e-12)
      differs = differs or math.abs(scores[l] - token_weighted[l]) > 1e-9
    end
    assert.is_true(differs, "with unequal batches the two averages should differ")
    assert.near(base, rec.details.base_loss, 1e-12)
    assert.matches("mean_b NLL_b", rec.formula, 1, true)
  end)

  it("padding never counts: padded targets do not change any metric", function()
    local m = model()
    local short = {{inputs = {{3, 4, 5}}, targets = {{4, 5, 6}}}}
    local padded = {{inputs = {{3, 4, 5, 0, 0}}, targets = {{4, 5, 6, -1, -1}}}}
    for _, metric in ipairs({"mask_out", "grad_weight", "fisher", "block_influence"}) do
      local a = adept.importance.layers(m, short, {metric = metric})
      local b = adept.importance.layers(m, padded, {metric = metric})
      -- T = 3 vs 5 changes the GEMM shapes, so the sums round differently: each metric is a difference or a
      -- product of forward/backward results (losses ~ log 29, gradients and activations of order 1), within the
      -- forward's rounding bound (spec_helpers) of those scales; the backward doubles the chain
      for l = 0, 3 do
        local tol = 2 * H.forward_rel_tol(CFG, 5) * math.max(math.log(29), math.abs(a[l]))
        assert.near(a[l], b[l], tol, metric .. " layer " .. l)
      end
    end
  end)

  it("block_influence is 1 - cos(layer input, layer output) from m:hidden_states", function()
    local m = model()
    local ids = {{1, 5, 7, 2, 9, 4, 3, 11}}
    local scores = adept.importance.layers(m, {ids}, {metric = "block_influence"})
    local hs = m:hidden_states({{1, 5, 7, 2, 9, 4, 3}})
    assert.equals(5, #hs)
    for l = 0, 3 do
      local x, y = hs[l + 1]:table()[1], hs[l + 2]:table()[1]
      local s = 0
      for t = 1, 7 do s = s + 1 - adept.tensor(x[t]):cosine(adept.tensor(y[t])) end
      -- 1 - cos of two hidden states from forwards of other shapes (7 vs 8 tokens): cos moves by at most twice
      -- the states' relative error, the forward's rounding bound (spec_helpers)
      assert.near(s / 7, scores[l], 2 * H.forward_rel_tol(CFG, 8))
    end
    -- a skipped layer changes nothing: influence 0
    m:with_layers_skipped({2}, function()
      assert.equals(0, adept.importance.layers(m, {ids}, {metric = "block_influence"})[2])
    end)
  end)

  it("gradient metrics restore the trainable set and leave gradients zero", function()
    local m = model()
    m:freeze("all")
    m:unfreeze("^model%.layers%.2%.")
    m:loss_and_grad(PROBE[1])
    local before = m:trainable_params()
    for _, metric in ipairs({"grad_weight", "rank", "fisher"}) do
      local scores = adept.importance.layers(m, PROBE, {metric = metric})
      for l = 0, 3 do assert.is_true(scores[l] > 0 or metric == "rank", metric) end
      assert.equals(before, m:trainable_params())
      assert.is_nil(m:grad("model.layers.1.mlp.up_proj.weight"))
      assert.is_not_nil(m:grad("model.layers.2.mlp.up_proj.weight"))
      assert.is_true(all_grads_zero(m))
    end
  end)

  it("grad_weight and fisher match sums over per-batch gradients", function()
    local m = model()
    local gw, fi = {}, {}
    for l = 0, 3 do gw[l], fi[l] = 0, 0 end
    for _, b in ipairs(PROBE) do
      m:zero_grad(); m:loss_and_grad(b)
      for _, name in ipairs(m:param_names()) do
        local l = tonumber(name:match("^model%.layers%.(%d+)%."))
        if l then
          gw[l] = gw[l] + m:grad(name):mul(m:param(name)):abs():sum() / #PROBE
          fi[l] = fi[l] + m:grad(name):square():sum() / #PROBE
        end
      end
    end
    m:zero_grad()
    local a = adept.importance.layers(m, PROBE, {metric = "grad_weight"})
    local b, rec = adept.importance.layers(m, PROBE, {metric = "fisher"})
    -- the same gradients (same batch shapes, so the same bits); only the f32 product g * w (one rounding, u =
    -- 2^-24 = 6e-8 relative) and the order of a double sum of positive terms (n 2^-53) differ: 1e-6 relative
    for l = 0, 3 do
      assert.near(gw[l], a[l], 1e-6 * gw[l])
      assert.near(fi[l], b[l], 1e-6 * fi[l])
    end
    assert.matches("dL_b/dθ", rec.formula, 1, true)
  end)

  it("rank scores lie in [0, 1) and rank the layers per tensor type", function()
    local m = model()
    local scores, rec = adept.importance.layers(m, PROBE, {metric = "rank"})
    local sum = 0
    for l = 0, 3 do
      assert.is_true(scores[l] >= 0 and scores[l] < 1)
      sum = sum + scores[l]
    end
    -- every type ranks 1..4: mean rank/L over layers is (1+2+3+4)/16, so scores sum to 4 - 10/4
    assert.near(4 - 10 / 4, sum, 1e-12)
    assert.equals(9, #rec.details.tensor_types)
  end)

  it("writes importance.json with metric, formula, probe, every score and timing", function()
    local m = model()
    local dir = os.tmpname()
    os.remove(dir)
    adept.fs.mkdir_p(dir)
    local scores = adept.importance.layers(m, PROBE, {metric = "mask_out", out = dir, probe_name = "unit test probe"})
    local f = assert(io.open(dir .. "/importance.json"))
    local rec = adept.json.decode(f:read("a"))
    f:close()
    os.remove(dir .. "/importance.json"); os.remove(dir)
    assert.equals("mask_out", rec.metric)
    assert.equals(2, rec.probe.batches)
    assert.equals("unit test probe", rec.probe.description)
    assert.is_number(rec.seconds)
    for l = 0, 3 do assert.near(scores[l], rec.scores[tostring(l)], 1e-12) end
    assert.equals(4, #rec.ranking_least_important_first)
    assert.is_true(rec.details.saving > 0.3)
  end)

  it("rejects unknown metrics and empty probes", function()
    local m = model()
    assert.has_error(function() adept.importance.layers(m, PROBE, {metric = "nope"}) end)
    assert.has_error(function() adept.importance.layers(m, {}, {}) end)
  end)
end)

describe("adept.importance.spearman", function()
  it("correlates rankings with average ranks for ties", function()
    assert.near(1, adept.importance.spearman({[0] = 1, [1] = 2, [2] = 3}, {[0] = 10, [1] = 20, [2] = 30}), 1e-12)
    assert.near(-1, adept.importance.spearman({[0] = 1, [1] = 2, [2] = 3}, {[0] = 3, [1] = 2, [2] = 1}), 1e-12)
    -- ranks a = 1,2,3,4 ; b = 1.5,1.5,3,4: Pearson of the ranks
    local r = adept.importance.spearman({[0] = 1, [1] = 2, [2] = 3, [3] = 4}, {[0] = 5, [1] = 5, [2] = 6, [3] = 7})
    assert.near(4.5 / math.sqrt(5 * 4.5), r, 1e-12)
    assert.is_nil(adept.importance.spearman({[0] = 1, [1] = 1}, {[0] = 1, [1] = 2}))
  end)
end)

describe("adept.importance.units", function()
  it("scores only trainable tensors as mean(|θ| * mean |g|) and clears gradients", function()
    local m = model()
    m:freeze("all")
    m:unfreeze("^model%.layers%.3%.")
    local abs = {}
    for _, b in ipairs(PROBE) do
      m:zero_grad(); m:loss_and_grad(b)
      for _, name in ipairs(m:param_names()) do
        if m:grad(name) then
          local g = m:grad(name):abs()
          abs[name] = abs[name] and abs[name]:add(g) or g
        end
      end
    end
    m:zero_grad()
    local scores = adept.importance.units(m, PROBE)
    local n = 0
    for name, s in pairs(scores) do
      n = n + 1
      assert.truthy(name:match("^model%.layers%.3%."))
      local want = m:param(name):abs():mul(abs[name]):div(2):mean()
      assert.near(want, s, 1e-6 * want) -- three f32 roundings (abs, mul, div: 3u = 1.8e-7) and a double mean
    end
    assert.equals(9, n)
    assert.is_true(all_grads_zero(m))
    local rows = adept.importance.units(m, PROBE, {granularity = "row"})
    assert.same({24}, rows["model.layers.3.mlp.gate_proj.weight"]:shape())
    assert.same({16}, rows["model.layers.3.input_layernorm.weight"]:shape())
    assert.near(scores["model.layers.3.mlp.down_proj.weight"], rows["model.layers.3.mlp.down_proj.weight"]:mean(), 1e-6)
    assert.is_true(all_grads_zero(m))
  end)

  it("a refresh between steps does not change the next update", function()
    local function run(refresh)
      local m = model()
      m:freeze("all"); m:unfreeze("^model%.layers%.1%.")
      local opt = adept.adamw(m, {lr = 1e-2})
      m:loss_and_grad(PROBE[1]); opt:step(); m:zero_grad()
      if refresh then adept.importance.units(m, PROBE) end
      m:loss_and_grad(PROBE[2]); opt:step(); m:zero_grad()
      return m:param("model.layers.1.mlp.up_proj.weight"):table()
    end
    assert.same(run(false), run(true))
  end)
end)
