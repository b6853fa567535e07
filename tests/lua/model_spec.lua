-- adept.Model bindings: creation from config fields, parameter views, freezing, loss/gradients on every batch
-- form, logits shapes, generation, surgery, skipping, and argument errors.
local adept = require "adept"
local H = require "spec_helpers"

local CFG, BATCH = H.TINY_CONFIG, H.TINY_BATCH
local function model(extra) return H.tiny_model(extra, 3) end

describe("adept.model", function()
  it("builds the HF parameter table from config fields", function()
    local m = model({architectures = {"Qwen3ForCausalLM"}, head_dim = 8, tie_word_embeddings = true})
    local names = m:param_names()
    assert.equals("model.embed_tokens.weight", names[1])
    assert.equals("model.norm.weight", names[#names])  -- tied: no lm_head
    assert.same({16, 16}, m:param("model.layers.0.self_attn.k_proj.weight"):shape())
    assert.same({8}, m:param("model.layers.2.self_attn.q_norm.weight"):shape())
    assert.equals(3, m:num_layers())
    assert.equals(8, m.config.head_dim)
    assert.is_true(m.config.qk_norm)
    assert.matches("Qwen3ForCausalLM", tostring(m), 1, true)
  end)

  it("reports config errors naming the field", function()
    local bad = {}
    for k, v in pairs(CFG) do bad[k] = v end
    bad.hidden_size = -3
    assert.has_error(function() adept.model(bad) end,
      "adept.model: config: hidden_size must be a positive integer, got -3")
    bad.hidden_size = nil
    assert.has_error(function() adept.model(bad) end, "adept.model: config: hidden_size is missing (a required field)")
  end)

  it("computes the same loss from every batch form and accumulates gradients", function()
    local m = model()
    local l1, n = m:loss(BATCH)
    assert.equals(12, n)
    local inputs, targets = {}, {}
    for r, row in ipairs(BATCH) do
      inputs[r], targets[r] = {}, {}
      for t = 1, #row - 1 do inputs[r][t], targets[r][t] = row[t], row[t + 1] end
    end
    assert.equals(l1, (m:loss({inputs = inputs, targets = targets})))
    targets[1][1] = -1
    local l3, n3 = m:loss({inputs = inputs, targets = targets})
    assert.equals(11, n3)
    assert.are_not.equal(l1, l3)
    assert.equals(l1, (m:loss_and_grad(BATCH)))
    assert.is_true(l1 > 2 and l1 < 5)  -- about log(23) for a random model
  end)

  it("freezes by pattern: frozen tensors have no gradient", function()
    local m = model()
    local total = m:trainable_params()
    assert.equals(#m:param_names(), m:freeze("all"))
    assert.equals(0, m:trainable_params())
    assert.equals(9, m:unfreeze("^model%.layers%.2%."))
    assert.is_nil(m:grad("model.layers.0.mlp.up_proj.weight"))
    assert.is_not_nil(m:grad("model.layers.2.mlp.up_proj.weight"))
    assert.is_true(m:trainable_params() < total)
    assert.is_true(m:loss_and_grad(BATCH) > 0)
    assert.is_true(m:memory().grads < m:memory().params)
    assert.is_true(m:memory().activations > 0)
  end)

  it("returns logits of shape [T, V] and [B, T, V]", function()
    local m = model()
    assert.same({3, 23}, m:logits({1, 2, 3}):shape())
    assert.same({2, 3, 23}, m:logits({{1, 2, 3}, {4, 5, 6}}):shape())
  end)

  it("returns the residual stream per layer", function()
    local m = model()
    local hs = m:hidden_states({{1, 2, 3}, {4, 5, 6}})
    assert.equals(4, #hs)
    assert.same({2, 3, 16}, hs[1]:shape())
    assert.same({3, 16}, m:hidden_states({1, 2, 3})[4]:shape())
  end)

  it("generates deterministically", function()
    local m = model()
    local g1 = m:generate({1, 2}, {max_tokens = 6})
    assert.equals(6, #g1)
    assert.same(g1, m:generate({1, 2}, {max_tokens = 6}))
    local s1 = m:generate({1, 2}, {max_tokens = 6, temperature = 1.0, top_k = 4, seed = 9})
    assert.same(s1, m:generate({1, 2}, {max_tokens = 6, temperature = 1.0, top_k = 4, seed = 9}))
    for _, id in ipairs(s1) do assert.is_true(id >= 0 and id < 23) end
  end)

  it("expands with identity copies: same loss, new indices, old handles valid", function()
    local m = model()
    local before = m:loss(BATCH)
    local old = m:param("model.layers.1.mlp.down_proj.weight")
    assert.same({1, 4}, m:expand({0, 2}, {init = "identity"}))
    assert.equals(5, m:num_layers())
    assert.same({1, 4}, m:expanded_layers())
    assert.equals(before, (m:loss(BATCH)))
    assert.same({16, 24}, old:shape())  -- the old handle still points at valid storage
    assert.has_error(function() m:expand({7}) end, "adept.Model:expand: layer 7 out of range [0, 5)")
    assert.has_error(function() m:expand("x") end)
  end)

  it("skips layers inside with_layers_skipped only", function()
    local m = model()
    local full = m:loss(BATCH)
    local skipped = m:with_layers_skipped({1}, function() return m:loss(BATCH) end)
    assert.are_not.equal(full, skipped)
    assert.equals(full, (m:loss(BATCH)))
    assert.has_error(function() m:with_layers_skipped({0}, function() error("boom") end) end)
    assert.equals(full, (m:loss(BATCH)))
  end)

  it("raises clear errors", function()
    local m = model()
    assert.has_error(function() m:param("nope") end, "adept.Model:param: no parameter named 'nope'")
    assert.has_error(function() m:loss({{1, 99, 2}}) end)
    assert.has_error(function() m:logits("abc") end)
    m:free()
    m:free()
    assert.has_error(function() m:loss(BATCH) end, "adept.Model:loss: model was freed")
  end)
end)
