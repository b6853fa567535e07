-- adept.tasl: TaSL (Feng et al., ACL 2024, "Task Skill Localization and Consolidation") adapted to continual
-- pretraining, as ADEPT's comparison uses it: localise the skill units that carry general competence by their
-- importance on the general probe, train on the domain, localise again on domain data, then consolidate: every
-- unit becomes an importance-weighted average of its weights before and after training, so units important for
-- the general probe keep more of their old weights and units important only for the domain take the new ones.
--
-- Formulas (docs/adept.md, "TaSL" has the paper's, the official code's and every choice):
--   sensitivity   I_t = |θ ⊙ ∇θ L_t|                     (probe batch t, elementwise)
--   smoothing     Ī_t = β1 Ī_{t-1} + (1 - β1) I_t,  Ū_t = β2 Ū_{t-1} + (1 - β2) |I_t - Ī_t|   (Ī_0 = Ū_0 = 0)
--   unit score    S(u) = mean over the parameters of unit u of Ī_T ⊙ Ū_T
--   normalise     Ŝ = (S - min) / (max - min) over all units of the model ("minmax"; 0 everywhere when max = min)
--   share kept    γ(u) = Ŝ_old(u) / (Ŝ_old(u) + Ŝ_new(u)), 1/2 when both are 0       (rule = "ratio")
--   consolidate   θ(u) = γ(u) θ_before(u) + (1 - γ(u)) θ_after(u), computed as θ_after + γ (θ_before - θ_after)
-- Skill units: granularity "row" (default) makes every output row of a matrix a unit (the parameters that feed one
-- output feature) and every element of a vector; "tensor" makes each weight tensor one unit (the official code's
-- grouping, one LoRA matrix per unit). Whole-tensor arithmetic runs in engine tensor ops (abs, mul, add, mean,
-- scale_rows); only the per-unit weights γ are computed here, one number per unit.
local adept = require "adept"

local M = {}

M.defaults = {granularity = "row", beta1 = 0.85, beta2 = 0.85, normalize = "minmax", rule = "ratio"}

local function fail(fname, msg, ...) error(("adept.tasl.%s: " .. msg):format(fname, ...), 3) end

local function is_tensor(v) return type(v) == "userdata" and type(v.table) == "function" end

local function check_beta(fname, key, v)
  if type(v) ~= "number" or not (v >= 0 and v < 1) then
    fail(fname, "%s must be a number in [0, 1), got %s", key, tostring(v))
  end
end

local function probe_batches(probe, n, fname)
  if type(probe) == "table" and probe[1] ~= nil then return probe end
  local ok, take = pcall(function() return probe.take end)
  if ok and type(take) == "function" then
    local batches = probe:take(n or 8)
    if #batches > 0 then return batches end
  end
  fail(fname, "probe must be a non-empty array of batches or a dataset, got %s", type(probe))
end

-- scores = adept.tasl.localize(m, probe, {granularity=, beta1=, beta2=, batches=})
-- Skill-unit importance of the trainable tensors on `probe` (an array of batches, or a dataset: its first
-- `batches` batches, default 8): {name -> number} for granularity "tensor", {name -> f32 [rows] tensor} for "row".
-- The smoothing runs over the probe batches in order (the paper runs it over training steps). The model is left
-- as found: weights untouched, gradients zero.
function M.localize(m, probe, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"granularity", "beta1", "beta2", "batches"}, "adept.tasl.localize")
  local granularity = opts.granularity or M.defaults.granularity
  if granularity ~= "row" and granularity ~= "tensor" then
    fail("localize", 'granularity must be "row" or "tensor", got %q', tostring(granularity))
  end
  local b1, b2 = opts.beta1 or M.defaults.beta1, opts.beta2 or M.defaults.beta2
  check_beta("localize", "beta1", b1)
  check_beta("localize", "beta2", b2)
  local batches = probe_batches(probe, opts.batches, "localize")
  local names = {}
  for _, p in ipairs(m:params()) do
    if p.trainable then names[#names + 1] = p.name end
  end
  if #names == 0 then fail("localize", "the model has no trainable tensor (unfreeze the units to score)") end
  local mean_ipt, mean_unc = {}, {}
  m:zero_grad()
  local ok, err = pcall(function()
    for _, b in ipairs(batches) do
      m:loss_and_grad(b)
      for _, name in ipairs(names) do
        local ipt = m:param(name):mul(m:grad(name)):abs()
        local avg = mean_ipt[name] and mean_ipt[name]:mul(b1):add(ipt:mul(1 - b1)) or ipt:mul(1 - b1)
        local dev = ipt:sub(avg):abs():mul(1 - b2)
        mean_unc[name] = mean_unc[name] and mean_unc[name]:mul(b2):add(dev) or dev
        mean_ipt[name] = avg
      end
      m:zero_grad()
    end
  end)
  m:zero_grad()
  if not ok then error(err, 0) end
  local scores = {}
  for _, name in ipairs(names) do
    scores[name] = adept.importance.unit_score(mean_ipt[name]:mul(mean_unc[name]), granularity)
  end
  return scores
end

-- before = adept.tasl.snapshot(m): a copy of every trainable tensor {name -> tensor}, the weights consolidation
-- returns to.
function M.snapshot(m)
  local copy = {}
  for _, p in ipairs(m:params()) do
    if p.trainable then
      -- in fp32, as the row will be once it trains (a bf16 row of a model loaded with dtype "auto" is widened then)
      local t = m:param(p.name)
      copy[p.name] = t:dtype() == "f32" and t:clone() or t:to("f32")
    end
  end
  return copy
end

-- Unit scores as Lua numbers, in a fixed order (sorted names, rows in order), checked: finite and >= 0.
local function unit_values(scores, fname, which)
  if type(scores) ~= "table" then fail(fname, "%s scores must be a table {name -> score}, got %s", which, type(scores)) end
  local names = {}
  for name in pairs(scores) do names[#names + 1] = name end
  table.sort(names)
  local values = {}
  for _, name in ipairs(names) do
    local s = scores[name]
    local list
    if type(s) == "number" then list = {s}
    elseif is_tensor(s) then
      if #s:shape() ~= 1 then fail(fname, "%s score of %s must be a number or a 1-D tensor (one entry per row)", which, name) end
      list = s:table()
    else
      fail(fname, "%s score of %s must be a number or a tensor, got %s", which, name, type(s))
    end
    for i, v in ipairs(list) do
      if v ~= v or v < 0 or v == math.huge then
        fail(fname, "%s score of %s (unit %d) is %s; importance scores are finite and >= 0", which, name, i, tostring(v))
      end
    end
    values[name] = list
  end
  return names, values
end

local function normalise(names, values, how)
  if how == "none" then return values end
  local lo, hi = math.huge, -math.huge
  for _, name in ipairs(names) do
    for _, v in ipairs(values[name]) do lo, hi = math.min(lo, v), math.max(hi, v) end
  end
  local out = {}
  for _, name in ipairs(names) do
    local list = {}
    for i, v in ipairs(values[name]) do list[i] = hi > lo and (v - lo) / (hi - lo) or 0 end
    out[name] = list
  end
  return out
end

-- numpy's percentile with linear interpolation (the official code's threshold)
local function percentile(names, values, q)
  local all = {}
  for _, name in ipairs(names) do for _, v in ipairs(values[name]) do all[#all + 1] = v end end
  table.sort(all)
  local pos = (#all - 1) * q / 100
  local lo = math.floor(pos)
  local frac = pos - lo
  return all[lo + 1] + (lo + 1 < #all and frac * (all[lo + 2] - all[lo + 1]) or 0)
end

local RULES = {"ratio", "threshold"}

-- weights = adept.tasl.weights(old_scores, new_scores, {normalize=, rule=}): γ per unit, the share of the
-- before-training weights each unit keeps, in the scores' form (a number or an f32 [rows] tensor per name).
-- rule "ratio": γ = Ŝ_old / (Ŝ_old + Ŝ_new), 1/2 where both are 0. rule "threshold" (the official code's): a unit
-- is important for a task when its normalised score exceeds that task's 80th percentile over all units; important
-- for both: γ = 0.7, only old: 1, only new: 0, neither: 0.5.
function M.weights(old, new, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"normalize", "rule"}, "adept.tasl.weights")
  local how, rule = opts.normalize or M.defaults.normalize, opts.rule or M.defaults.rule
  if how ~= "minmax" and how ~= "none" then fail("weights", 'normalize must be "minmax" or "none", got %q', tostring(how)) end
  if rule ~= "ratio" and rule ~= "threshold" then
    fail("weights", "rule must be one of %s, got %q", table.concat(RULES, ", "), tostring(rule))
  end
  local names, ov = unit_values(old, "weights", "old")
  local _, nv = unit_values(new, "weights", "new")
  for name in pairs(nv) do if not ov[name] then fail("weights", "new scores name %s, the old scores do not", name) end end
  for _, name in ipairs(names) do
    if not nv[name] then fail("weights", "old scores name %s, the new scores do not", name) end
    if #nv[name] ~= #ov[name] or type(new[name]) ~= type(old[name]) then
      fail("weights", "%s has %d old unit(s) and %d new unit(s) (score both at the same granularity)", name,
        #ov[name], #nv[name])
    end
  end
  if #names == 0 then fail("weights", "no scores given") end
  local on, nn = normalise(names, ov, how), normalise(names, nv, how)
  local th_old, th_new
  if rule == "threshold" then th_old, th_new = percentile(names, on, 80), percentile(names, nn, 80) end
  local out = {}
  for _, name in ipairs(names) do
    local list = {}
    for i = 1, #on[name] do
      local o, n = on[name][i], nn[name][i]
      if rule == "ratio" then
        list[i] = (o + n > 0) and o / (o + n) or 0.5
      else
        local io, inew = o > th_old, n > th_new
        list[i] = (io and inew) and 0.7 or io and 1 or inew and 0 or 0.5
      end
    end
    out[name] = type(old[name]) == "number" and list[1] or adept.tensor(list)
  end
  return out
end

-- record = adept.tasl.consolidate(m, before, old_scores, new_scores, {normalize=, rule=})
-- Writes θ = θ_after + γ ⊙ (θ_before - θ_after) into every scored tensor of m (θ_after: m's weights now), γ from
-- adept.tasl.weights. Returns {weights = {name -> γ}, units =, mean_kept = mean γ over units, kept_all = units with
-- γ = 1, took_new = units with γ = 0}.
function M.consolidate(m, before, old, new, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"normalize", "rule"}, "adept.tasl.consolidate")
  if type(before) ~= "table" then fail("consolidate", "before must be a snapshot {name -> tensor} (adept.tasl.snapshot)") end
  local rows = {}
  for _, p in ipairs(m:params()) do rows[p.name] = p end
  for name in pairs(old or {}) do
    if not rows[name] then fail("consolidate", "the scores name %s, which is not a tensor of the model", name) end
    if not is_tensor(before[name]) then fail("consolidate", "the snapshot has no tensor %s", name) end
    local want, got = m:param(name):shape(), before[name]:shape()
    if table.concat(want, ",") ~= table.concat(got, ",") then
      fail("consolidate", "the snapshot of %s has shape [%s], the model's tensor [%s]", name, table.concat(got, ", "),
        table.concat(want, ", "))
    end
    local s = old[name]
    if is_tensor(s) and (#s:shape() ~= 1 or s:shape()[1] ~= want[1]) then
      fail("consolidate", "%s has %d rows, its old scores %d entries", name, want[1], s:numel())
    end
  end
  local gamma = M.weights(old, new, opts)
  local units, kept, whole, fresh = 0, 0, 0, 0
  for name, g in pairs(gamma) do
    local after = m:param(name)
    local delta = before[name]:sub(after)
    -- γ is computed on the host; the weights may live on a device
    local moved = type(g) == "number" and delta:mul(g) or delta:scale_rows(g:to(delta:device()))
    m:set_param(name, after:add(moved))
    for _, v in ipairs(type(g) == "number" and {g} or g:table()) do
      units, kept = units + 1, kept + v
      if v == 1 then whole = whole + 1 elseif v == 0 then fresh = fresh + 1 end
    end
  end
  return {weights = gamma, units = units, mean_kept = kept / units, kept_all = whole, took_new = fresh}
end

return M
