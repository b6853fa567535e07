-- adept.tasl: localisation equals the smoothed sensitivity x uncertainty of the paper averaged over each unit
-- (against a double-precision reference built from the model's own gradients); consolidation equals
-- γ θ_before + (1 - γ) θ_after elementwise within a float32-derived bound; important units move less; the limit
-- cases (all scores 0 or equal: the midpoint; old 0: the new weights; new 0: the old ones); the official code's
-- threshold rule; misspelt options and bad scores refused.
local adept = require "adept"

local CFG = {vocab_size = 23, hidden_size = 8, intermediate_size = 12, num_hidden_layers = 2,
             num_attention_heads = 2, num_key_value_heads = 1, rms_norm_eps = 1e-5}
local PROBE = {
  {{1, 5, 7, 2, 9, 4, 3, 11}, {8, 8, 1, 0, 22, 5, 6, 13}},
  {{3, 4, 5, 6, 7, 8, 9, 10}, {2, 2, 2, 2, 1, 1, 1, 1}},
  {{12, 3, 14, 15, 0, 2, 21, 1}, {4, 4, 9, 9, 19, 18, 17, 16}},
}
local U = 2 ^ -24 -- f32 unit roundoff

local function model(seed) return adept.model(CFG, {seed = seed or 3, init_std = 0.3}) end

local function flat(t, out)
  out = out or {}
  if type(t) ~= "table" then out[#out + 1] = t return out end
  for i = 1, #t do flat(t[i], out) end
  return out
end

-- rows of a parameter as Lua arrays (a vector: one element per row)
local function rows_of(t)
  local v = t:table()
  if #t:shape() == 1 then
    local r = {}
    for i, x in ipairs(v) do r[i] = {x} end
    return r
  end
  return v
end

-- The weights after "training": before + a fixed perturbation per tensor, the same for every row, so every row of a
-- tensor moves by the same distance and only consolidation makes the difference.
local function perturb(m, amount)
  for _, name in ipairs(m:param_names()) do
    local p = m:param(name)
    local shape = p:shape()
    local cols = #shape == 2 and shape[2] or 1
    local pattern = adept.randn({cols}, 99):table()
    local rows = {}
    for r = 1, shape[1] do
      if #shape == 2 then rows[r] = {} for c = 1, cols do rows[r][c] = amount * pattern[c] end
      else rows[r] = amount * pattern[1] end
    end
    m:set_param(name, p:add(adept.tensor(rows)))
  end
end

describe("adept.tasl.localize", function()
  it("is the mean over each row of the smoothed sensitivity times the smoothed uncertainty (double reference)", function()
    local m = model()
    local b1, b2 = 0.85, 0.7
    -- the reference: the model's own per-batch gradients, the recursion in double
    local ipt_avg, unc_avg = {}, {}
    for _, b in ipairs(PROBE) do
      m:zero_grad()
      m:loss_and_grad(b)
      for _, name in ipairs(m:param_names()) do
        local p, g = flat(m:param(name):table()), flat(m:grad(name):table())
        ipt_avg[name] = ipt_avg[name] or {}
        unc_avg[name] = unc_avg[name] or {}
        for i = 1, #p do
          local I = math.abs(p[i] * g[i])
          local a = b1 * (ipt_avg[name][i] or 0) + (1 - b1) * I
          unc_avg[name][i] = b2 * (unc_avg[name][i] or 0) + (1 - b2) * math.abs(I - a)
          ipt_avg[name][i] = a
        end
      end
    end
    m:zero_grad()
    local before = {}
    for _, name in ipairs(m:param_names()) do before[name] = m:param(name):table() end
    local rows = adept.tasl.localize(m, PROBE, {beta1 = b1, beta2 = b2})
    local tensors = adept.tasl.localize(m, PROBE, {beta1 = b1, beta2 = b2, granularity = "tensor"})
    local n = 0
    for _, name in ipairs(m:param_names()) do
      local shape = m:param(name):shape()
      local cols = #shape == 2 and shape[2] or 1
      local got = rows[name]:table()
      assert.equals(shape[1], #got)
      local total = 0
      for r = 1, shape[1] do
        local s = 0
        for c = 1, cols do
          local i = (r - 1) * cols + c
          s = s + ipt_avg[name][i] * unc_avg[name][i]
        end
        total = total + s
        -- every f32 op (|θ g|, the three-term recursions, the product, the mean) rounds once relative to its
        -- value: 3 batches x ~8 roundings plus the mean's; a relative 1e-5 covers that with margin
        assert.is_true(math.abs(got[r] - s / cols) <= 1e-5 * s / cols + 1e-30,
          ("%s row %d: %g vs %g"):format(name, r, got[r], s / cols))
        n = n + 1
      end
      local mean = total / (shape[1] * cols)
      assert.is_true(math.abs(tensors[name] - mean) <= 1e-5 * mean + 1e-30, name)
    end
    assert.is_true(n > 50)
    -- left as found: weights unchanged, gradients zero
    for _, name in ipairs(m:param_names()) do
      assert.same(before[name], m:param(name):table())
      assert.equals(0, m:grad(name):abs():max())
    end
  end)

  it("scores only trainable tensors and refuses a model with none", function()
    local m = model()
    m:freeze("all")
    m:unfreeze("^model%.layers%.1%.")
    local s = adept.tasl.localize(m, PROBE)
    for name in pairs(s) do assert.truthy(name:match("^model%.layers%.1%."), name) end
    assert.truthy(s["model.layers.1.mlp.down_proj.weight"])
    m:freeze("all")
    assert.has_error(function() adept.tasl.localize(m, PROBE) end,
      "adept.tasl.localize: the model has no trainable tensor (unfreeze the units to score)")
  end)

  it("refuses misspelt options and bad values", function()
    local m = model()
    assert.has_error(function() adept.tasl.localize(m, PROBE, {granulatity = "row"}) end)
    local ok, err = pcall(adept.tasl.localize, m, PROBE, {granulatity = "row"})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("unknown option 'granulatity'", 1, true))
    assert.truthy(tostring(err):find("did you mean 'granularity'", 1, true))
    assert.has_error(function() adept.tasl.localize(m, PROBE, {granularity = "column"}) end,
      'adept.tasl.localize: granularity must be "row" or "tensor", got "column"')
    assert.has_error(function() adept.tasl.localize(m, PROBE, {beta1 = 1}) end,
      "adept.tasl.localize: beta1 must be a number in [0, 1), got 1")
    assert.has_error(function() adept.tasl.localize(m, {}) end)
  end)
end)

describe("adept.tasl.consolidate", function()
  -- hand-set row scores: old rising with the row index, new falling, on every tensor
  local function hand_scores(m, old_fn, new_fn)
    local old, new = {}, {}
    for _, name in ipairs(m:param_names()) do
      local R = m:param(name):shape()[1]
      local o, n = {}, {}
      for r = 1, R do o[r], n[r] = old_fn(r, R, name), new_fn(r, R, name) end
      old[name], new[name] = adept.tensor(o), adept.tensor(n)
    end
    return old, new
  end

  -- checks θ = γ θ_before + (1 - γ) θ_after for every element, γ per row given by gamma(name, r)
  local function check_formula(m, before_t, after_t, gamma)
    for _, name in ipairs(m:param_names()) do
      local got, b, a = rows_of(m:param(name)), rows_of(before_t[name]), rows_of(after_t[name])
      for r = 1, #got do
        local g = gamma(name, r)
        for c = 1, #got[r] do
          local want = g * b[r][c] + (1 - g) * a[r][c]
          -- θ_after + γ(θ_before - θ_after) in f32: the difference, γ's conversion, the product and the sum
          -- each round once; |γ (b - a)| and |θ| are at most |a| + |b|
          local tol = 4 * U * (math.abs(a[r][c]) + math.abs(b[r][c]))
          if math.abs(got[r][c] - want) > tol then
            error(("%s [%d, %d]: %.9g, want %.9g (γ %g)"):format(name, r, c, got[r][c], want, g))
          end
        end
      end
    end
  end

  local function setup(amount)
    local m = model()
    local before = adept.tasl.snapshot(m)
    perturb(m, amount or 0.05)
    local after = adept.tasl.snapshot(m)
    return m, before, after
  end

  it("is γ θ_before + (1 - γ) θ_after elementwise, γ = old / (old + new) per row (normalize = none)", function()
    local m, before, after = setup()
    local old, new = hand_scores(m, function(r) return r end, function(r, R) return R + 1 - r end)
    local rec = adept.tasl.consolidate(m, before, old, new, {normalize = "none"})
    check_formula(m, before, after, function(name, r)
      local R = #rows_of(after[name])
      return r / (r + (R + 1 - r))
    end)
    assert.is_true(rec.units > 50)
    -- γ as returned, row by row
    local g = rec.weights["model.layers.0.mlp.down_proj.weight"]:table()
    assert.near(1 / 9, g[1], 1e-7)
    assert.near(8 / 9, g[8], 1e-7)
  end)

  it("normalises min-max over all units of the model by default", function()
    local m, before, after = setup()
    -- old: 10 + 2r (r = row), new: 7 everywhere except the first row of every tensor (0)
    local old, new = hand_scores(m, function(r) return 10 + 2 * r end, function(r) return r == 1 and 0 or 7 end)
    local omin, omax = math.huge, -math.huge
    for _, name in ipairs(m:param_names()) do
      local R = m:param(name):shape()[1]
      omin, omax = math.min(omin, 12), math.max(omax, 10 + 2 * R)
    end
    adept.tasl.consolidate(m, before, old, new)
    check_formula(m, before, after, function(_, r)
      local o = (10 + 2 * r - omin) / (omax - omin)
      local n = r == 1 and 0 or 1
      if o + n == 0 then return 0.5 end
      return o / (o + n)
    end)
  end)

  it("moves units scored more important for general less than unimportant ones", function()
    local m, before = setup(0.05)
    local old, new = hand_scores(m, function(r) return r end, function() return 1 end)
    adept.tasl.consolidate(m, before, old, new, {normalize = "none"})
    local checked = 0
    for _, name in ipairs(m:param_names()) do
      local cur, b = rows_of(m:param(name)), rows_of(before[name])
      local last = math.huge
      for r = 1, #cur do
        local d = 0
        for c = 1, #cur[r] do d = d + (cur[r][c] - b[r][c]) ^ 2 end
        d = math.sqrt(d)
        -- row r keeps r/(r+1) of its old weights: it moves 1/(r+1) of the common training step
        assert.is_true(d < last, ("%s row %d moved %g, row %d %g"):format(name, r, d, r - 1, last))
        last = d
        checked = checked + 1
      end
    end
    assert.is_true(checked > 50)
  end)

  it("takes the midpoint when every score is 0, or all are equal", function()
    for _, case in ipairs{{0, 0, "minmax"}, {0, 0, "none"}, {3, 3, "minmax"}, {2.5, 2.5, "none"}, {4, 9, "minmax"}} do
      local m, before, after = setup()
      local old, new = hand_scores(m, function() return case[1] end, function() return case[2] end)
      local rec = adept.tasl.consolidate(m, before, old, new, {normalize = case[3]})
      -- {4, 9} min-max: each side is constant, so normalises to 0 everywhere -> the midpoint as well
      check_formula(m, before, after, function() return 0.5 end)
      assert.equals(0.5, rec.mean_kept)
    end
  end)

  it("keeps the new weights exactly where old is 0 and the old ones where new is 0", function()
    local m, before, after = setup()
    local old, new = hand_scores(m, function() return 0 end, function() return 1 end)
    local rec = adept.tasl.consolidate(m, before, old, new, {normalize = "none"})
    for _, name in ipairs(m:param_names()) do assert.same(after[name]:table(), m:param(name):table()) end
    assert.equals(rec.units, rec.took_new)
    m:set_param("model.norm.weight", after["model.norm.weight"])
    local m2, before2, after2 = setup()
    old, new = hand_scores(m2, function() return 1 end, function() return 0 end)
    rec = adept.tasl.consolidate(m2, before2, old, new, {normalize = "none"})
    check_formula(m2, before2, after2, function() return 1 end)
    assert.equals(rec.units, rec.kept_all)
  end)

  it("works per tensor with number scores", function()
    local m, before, after = setup()
    local old, new, gam = {}, {}, {}
    for i, name in ipairs(m:param_names()) do old[name], new[name], gam[name] = i, 2, i / (i + 2) end
    adept.tasl.consolidate(m, before, old, new, {normalize = "none"})
    check_formula(m, before, after, function(name) return gam[name] end)
  end)

  it("applies the official code's threshold rule: top 20% of each side", function()
    -- 10 units in one tensor-granularity map: old important for units 9, 10; new for 8, 10 (numpy percentile 80)
    local old, new = {}, {}
    for i = 1, 10 do
      old["u" .. i] = i
      new["u" .. i] = (i == 8 or i == 10) and 100 + i or i
    end
    local g = adept.tasl.weights(old, new, {rule = "threshold"})
    assert.equals(0.7, g.u10) -- important for both
    assert.equals(1, g.u9)    -- only for the old task
    assert.equals(0, g.u8)    -- only for the new one
    assert.equals(0.5, g.u1)  -- for neither
  end)

  it("refuses misspelt options, bad scores and a mismatched snapshot", function()
    local m, before = setup()
    local old, new = hand_scores(m, function(r) return r end, function() return 1 end)
    local ok, err = pcall(adept.tasl.consolidate, m, before, old, new, {rul = "ratio"})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("adept.tasl.consolidate: unknown option 'rul'", 1, true))
    assert.has_error(function() adept.tasl.consolidate(m, before, old, new, {rule = "max"}) end,
      'adept.tasl.weights: rule must be one of ratio, threshold, got "max"')
    assert.has_error(function() adept.tasl.consolidate(m, before, old, new, {normalize = "zscore"}) end,
      'adept.tasl.weights: normalize must be "minmax" or "none", got "zscore"')
    assert.has_error(function() adept.tasl.weights({a = -1}, {a = 1}) end,
      "adept.tasl.weights: old score of a (unit 1) is -1; importance scores are finite and >= 0")
    assert.has_error(function() adept.tasl.weights({a = 0 / 0}, {a = 1}) end)
    assert.has_error(function() adept.tasl.weights({a = 1}, {b = 1}) end)
    assert.has_error(function() adept.tasl.weights({a = adept.tensor({1, 2})}, {a = adept.tensor({1})}) end,
      "adept.tasl.weights: a has 2 old unit(s) and 1 new unit(s) (score both at the same granularity)")
    local bad = {}
    for k, v in pairs(before) do bad[k] = v end
    bad["model.norm.weight"] = adept.zeros({3})
    assert.has_error(function() adept.tasl.consolidate(m, bad, old, new) end,
      "adept.tasl.consolidate: the snapshot of model.norm.weight has shape [3], the model's tensor [8]")
    assert.has_error(function() adept.tasl.consolidate(m, before, {nope = 1}, {nope = 1}) end,
      "adept.tasl.consolidate: the scores name nope, which is not a tensor of the model")
  end)
end)

describe("adept.cpt tasl method", function()
  it("declares the TaSL options and refuses misspelt or out-of-range ones", function()
    local cpt = require "adept.cpt"
    local o = cpt.options("tasl", {tasl_granularity = "tensor"}, {})
    assert.equals("tasl", o.consolidate)
    assert.equals("all", o.train)
    assert.equals("tensor", o.tasl_granularity)
    local ok, err = pcall(cpt.options, "tasl", {tasl_rul = "ratio"}, {})
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tasl_rule", 1, true))
    assert.has_error(function() cpt.options("tasl", {tasl_beta1 = 1.5}, {}) end)
    assert.has_error(function() cpt.options("tasl", {consolidate = "merge"}, {}) end)
    -- the other methods are unchanged: no consolidation
    assert.is_nil(cpt.options("full_cpt", {}, {}).consolidate)
  end)
end)
