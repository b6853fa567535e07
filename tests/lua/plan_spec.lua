-- adept.plan: the memory of a run before it starts, against what the engine then allocates (issue 11 point 6).
local adept = require "adept"

local CFG = {vocab_size = 96, hidden_size = 32, intermediate_size = 48, num_hidden_layers = 8,
             num_attention_heads = 4, num_key_value_heads = 2, max_position_embeddings = 64}

-- the run the plan describes: 2 uniform copies trained, the rest frozen, one step of batch 2 x 16
local function measured(copies, trainable, recompute)
  local m = adept.model(CFG, {seed = 1})
  if recompute then m:set_recompute(true) end
  local made = copies > 0 and m:expand(adept.select.uniform(8, copies)) or {}
  if trainable == "copies" then
    local names = {}
    for _, p in ipairs(m:params()) do
      for _, c in ipairs(made) do if p.layer == c then names[#names + 1] = p.name end end
    end
    m:set_trainable(names)
  end
  local opt = adept.adamw(m)
  local ids = {}
  for r = 1, 2 do ids[r] = {} for t = 1, 17 do ids[r][t] = (r * 7 + t * 3) % 96 end end
  adept.train_step(m, opt, {ids})
  return adept.memory(m, opt)
end

describe("adept.plan", function()
  for _, case in ipairs{{0, "all"}, {2, "copies"}, {0, "all", true}, {2, "copies", true}} do
    it(("matches the engine's allocation (%d copies, %s trainable%s)"):format(case[1], case[2],
        case[3] and ", recompute" or ""), function()
      local p = adept.plan(CFG, {batch_size = 2, seq_len = 16, copies = case[1], trainable = case[2], recompute = case[3]})
      local got = measured(case[1], case[2], case[3])
      assert.equals(got.params, p.weights)
      assert.equals(got.grads, p.grads)
      assert.equals(got.optimizer_allocated, p.optimizer)
      assert.equals(got.activations, p.activations + p.workspace)
      assert.equals(8 + case[1], p.layers)
      assert.equals(p.weights + p.masters + p.grads + p.optimizer + p.activations + p.workspace, p.total)
    end)
  end

  it("keeps activations only from the lowest trainable layer up", function()
    local all = adept.plan(CFG, {batch_size = 2, seq_len = 16})
    local top = adept.plan(CFG, {batch_size = 2, seq_len = 16, trainable = {6, 7}})
    local none = adept.plan(CFG, {batch_size = 2, seq_len = 16, trainable = "none"})
    assert.equals(6, top.first_kept)
    assert.is_true(none.activations < top.activations and top.activations < all.activations)
    assert.equals(0, none.grads + none.optimizer)
    assert.equals(all.optimizer // 4, adept.plan(CFG, {batch_size = 2, seq_len = 16, shards = 4}).optimizer)
    -- recompute keeps one layer's buffers whatever trains (plus every layer's input)
    local rc = adept.plan(CFG, {batch_size = 2, seq_len = 16, recompute = true})
    assert.is_true(rc.activations < top.activations)
    assert.equals(rc.activations, adept.plan(CFG, {batch_size = 2, seq_len = 16, trainable = {6, 7}, recompute = true}).activations)
  end)

  it("refuses what it cannot plan, naming it", function()
    local ok, err = pcall(adept.plan, CFG, {trainable = {9}})
    assert.is_false(ok)
    assert.matches("trainable layer 9 is not a layer of the 8%-layer model", err)
    ok, err = pcall(adept.plan, CFG, {batchsize = 2})
    assert.is_false(ok)
    assert.matches("batchsize", err)
    ok, err = pcall(adept.plan, CFG, {trainable = "top"})
    assert.is_false(ok)
    assert.matches('trainable must be "all", "none", "copies"', err)
  end)
end)
