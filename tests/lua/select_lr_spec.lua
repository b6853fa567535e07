-- Layer selection and learning-rate policies (pure Lua stages of ADEPT).
local adept = require "adept"

describe("adept.select", function()
  local scores = {[0] = 0.9, [1] = 0.5, [2] = 0.01, [3] = 0.2, [4] = 0.05, [5] = 0.3}

  it("picks the k least important layers, sorted by index", function()
    assert.same({2, 4}, adept.select.least_important(scores, 2))
    assert.same({2, 3, 4}, adept.select.least_important(scores, 3))
    assert.same({0, 1}, adept.select.most_important(scores, 2))
    assert.same({}, adept.select.least_important(scores, 0))
  end)

  it("breaks ties by the lower layer index", function()
    assert.same({1, 3}, adept.select.least_important({[0] = 1, [1] = 0, [2] = 1, [3] = 0, [4] = 0}, 2))
  end)

  it("places LLaMA-Pro copies after every n/k layers, the last at the top", function()
    assert.same({3, 7, 11, 15, 19, 23, 27, 31}, adept.select.uniform(32, 8))
    assert.same({0, 2, 4}, adept.select.uniform(5, 3))
    assert.same({4}, adept.select.uniform(5, 1))
  end)

  it("draws random layers deterministically by seed", function()
    local a, b = adept.select.random(28, 4, 7), adept.select.random(28, 4, 7)
    assert.same(a, b)
    assert.equals(4, #a)
    local seen = {}
    for i, l in ipairs(a) do
      assert.is_true(l >= 0 and l < 28)
      assert.is_nil(seen[l])
      seen[l] = true
      if i > 1 then assert.is_true(a[i - 1] < l) end
    end
    local differs = false
    for s = 1, 10 do
      local c = adept.select.random(28, 4, s)
      for i = 1, 4 do if c[i] ~= a[i] then differs = true end end
    end
    assert.is_true(differs)
  end)

  it("gives top and bottom layers", function()
    assert.same({6, 7}, adept.select.top(8, 2))
    assert.same({0, 1}, adept.select.bottom(8, 2))
  end)

  it("rejects bad arguments with a message naming the function", function()
    assert.has_error(function() adept.select.least_important(scores, 7) end,
      "adept.select.least_important: k = 7 is more than the 6 layers available")
    assert.has_error(function() adept.select.least_important("x", 1) end)
    assert.has_error(function() adept.select.uniform(8, -1) end)
    assert.has_error(function() adept.select.random(8, 2, "seed") end)
  end)
end)

describe("adept.lr", function()
  local scores = {
    ["model.layers.3.self_attn.q_proj.weight"] = 0.02,
    ["model.layers.3.mlp.down_proj.weight"] = 0.04,
    ["model.layers.3.input_layernorm.weight"] = 0.9,
    ["model.layers.3.post_attention_layernorm.weight"] = 0.5,
    ["model.layers.5.self_attn.q_proj.weight"] = 0.01,
  }

  it("maps importance to 2*(Imax-I)/(Imax-Imin) over all units", function()
    local w, info = adept.lr.decoupled(scores)
    local range = 0.9 - 0.01
    for name, s in pairs(scores) do
      assert.near(2 * (0.9 - s) / range, w[name], 1e-12)
    end
    assert.equals(0, w["model.layers.3.input_layernorm.weight"])
    assert.equals(2, w["model.layers.5.self_attn.q_proj.weight"])
    assert.equals(1, info.near_zero)
  end)

  -- the groups of by_kind and by_layer come from the model's parameter table, not from the names
  local m6 = adept.model({vocab_size = 16, hidden_size = 8, intermediate_size = 16, num_hidden_layers = 6,
                          num_attention_heads = 2})

  it("normalises norms and matrices apart with by_kind", function()
    local w = adept.lr.decoupled(scores, {normalize = "by_kind", model = m6})
    assert.equals(0, w["model.layers.3.input_layernorm.weight"])
    assert.equals(2, w["model.layers.3.post_attention_layernorm.weight"])
    assert.equals(0, w["model.layers.3.mlp.down_proj.weight"])
    assert.equals(2, w["model.layers.5.self_attn.q_proj.weight"])
    assert.near(2 * (0.04 - 0.02) / 0.03, w["model.layers.3.self_attn.q_proj.weight"], 1e-12)
  end)

  it("normalises within each layer with by_layer; a single unit gets 1", function()
    local w = adept.lr.decoupled(scores, {normalize = "by_layer", model = m6})
    assert.equals(1, w["model.layers.5.self_attn.q_proj.weight"])
    assert.equals(2, w["model.layers.3.self_attn.q_proj.weight"])
  end)

  it("refuses a NaN row score instead of spreading it over its group", function()
    local ok, err = pcall(adept.lr.decoupled, {a = adept.tensor({0.3, 0.2}), b = adept.tensor({0.1, 0 / 0})})
    assert.is_false(ok)
    assert.matches("score of b %(entry 2%) is NaN", err)
  end)

  it("gives 1 to every unit when all scores are equal", function()
    local w = adept.lr.decoupled({a = 0.3, b = 0.3})
    assert.same({a = 1, b = 1}, w)
  end)

  it("respects max_scale and offers the ablation controls", function()
    local w = adept.lr.decoupled(scores, {max_scale = 4})
    assert.equals(4, w["model.layers.5.self_attn.q_proj.weight"])
    local inv = adept.lr.inverted(scores)
    assert.equals(2, inv["model.layers.3.input_layernorm.weight"])
    local u = adept.lr.uniform(scores)
    for name in pairs(scores) do assert.equals(1, u[name]) end
    local sh1, sh2 = adept.lr.shuffled(scores, {seed = 3}), adept.lr.shuffled(scores, {seed = 3})
    assert.same(sh1, sh2)
    local a, b = {}, {}
    local d = adept.lr.decoupled(scores)
    for name in pairs(scores) do a[#a + 1] = sh1[name]; b[#b + 1] = d[name] end
    table.sort(a); table.sort(b)
    assert.same(b, a)
  end)

  it("rejects malformed scores and options", function()
    assert.has_error(function() adept.lr.decoupled({a = "x"}) end)
    assert.has_error(function() adept.lr.decoupled(scores, {normalize = "per_unit"}) end,
      'adept.lr.decoupled: normalize must be "all", "by_kind" or "by_layer", got "per_unit"')
    local ok, err = pcall(adept.lr.decoupled, scores, {normalize = "by_kind"})
    assert.is_false(ok)
    assert.matches('normalize = "by_kind" needs opts.model', err, 1, true)
    ok, err = pcall(adept.lr.decoupled, {["model.layers.9.mlp.up_proj.weight"] = 1}, {normalize = "by_layer", model = m6})
    assert.is_false(ok)
    assert.matches("model.layers.9.mlp.up_proj.weight is not a parameter of opts.model", err, 1, true)
  end)

  it("maps row scores to row multipliers with min/max over every row of the group", function()
    local rows = {["model.layers.1.mlp.up_proj.weight"] = adept.tensor({0, 1, 4}),
                  ["model.layers.1.input_layernorm.weight"] = adept.tensor({2, 2}),
                  ["model.layers.1.mlp.down_proj.weight"] = 3}
    local w, info = adept.lr.decoupled(rows)
    assert.same({2, 1.5, 0}, w["model.layers.1.mlp.up_proj.weight"]:table())
    assert.same({1, 1}, w["model.layers.1.input_layernorm.weight"]:table())
    assert.equals(0.5, w["model.layers.1.mlp.down_proj.weight"])
    assert.equals(1, info.near_zero)
    local k = adept.lr.decoupled(rows, {normalize = "by_kind", model = m6})
    assert.same({1, 1}, k["model.layers.1.input_layernorm.weight"]:table()) -- a group of equal rows -> 1
    assert.same({0, 0.5, 2}, adept.lr.inverted(rows)["model.layers.1.mlp.up_proj.weight"]:table())
    assert.has_error(function() adept.lr.shuffled(rows) end)
  end)
end)

