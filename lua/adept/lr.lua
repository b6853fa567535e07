-- Learning-rate policies over parameter units: ADEPT's decoupled rule and the controls its ablations
-- compare against. A policy maps unit scores {name -> importance} to multipliers {name -> scale} that
-- opt:set_lr_scales applies on top of the schedule (lr_unit(t) = lr * schedule(t) * scale, no compounding).
local M = {}

local function is_norm(name) return name:find("norm", 1, true) ~= nil end

local function layer_of(name) return tonumber(name:match("%.layers%.(%d+)%.")) end

-- The normalisation group a unit falls into.
local groupers = {
  all = function() return "all" end,
  -- norms apart from matrices: |theta| of a norm is ~1 against ~0.1 for a matrix, so with one group the
  -- norms take the whole range (the official DeepSpeed variant separates them the same way)
  by_kind = function(name) return is_norm(name) and "norm" or "matrix" end,
  by_layer = function(name) return "layer" .. tostring(layer_of(name)) end,
}

local function check_scores(scores, fname)
  if type(scores) ~= "table" then
    error(("adept.lr.%s: unit scores must be a table {name -> importance}, got %s"):format(fname, type(scores)), 3)
  end
  for name, s in pairs(scores) do
    if type(name) ~= "string" or type(s) ~= "number" or s ~= s then
      error(("adept.lr.%s: scores must map tensor names to numbers (got %s -> %s)"):format(
        fname, tostring(name), tostring(s)), 3)
    end
  end
end

-- ADEPT stage 2: w = max_scale * (Imax - I) / (Imax - Imin) within each group; all equal -> 1.
-- The most general-critical unit gets 0, the least gets max_scale. Returns the scales and a summary
-- {groups=, near_zero=} (units with w < 0.05, which the method effectively freezes).
function M.decoupled(scores, opts)
  check_scores(scores, "decoupled")
  opts = opts or {}
  local max_scale = opts.max_scale or 2
  local normalize = opts.normalize or "all"
  local group_of = groupers[normalize]
  if not group_of then
    error(("adept.lr.decoupled: normalize must be \"all\", \"by_kind\" or \"by_layer\", got %q"):format(
      tostring(normalize)), 2)
  end
  local lo, hi = {}, {}
  for name, s in pairs(scores) do
    local g = group_of(name)
    lo[g] = math.min(lo[g] or math.huge, s)
    hi[g] = math.max(hi[g] or -math.huge, s)
  end
  local scales, near_zero, n_groups = {}, 0, 0
  for _ in pairs(lo) do n_groups = n_groups + 1 end
  for name, s in pairs(scores) do
    local g = group_of(name)
    local w = hi[g] > lo[g] and max_scale * (hi[g] - s) / (hi[g] - lo[g]) or 1
    scales[name] = w
    if w < 0.05 then near_zero = near_zero + 1 end
  end
  return scales, {groups = n_groups, near_zero = near_zero, normalize = normalize}
end

-- Controls for the LR-policy ablation.
function M.uniform(scores)
  check_scores(scores, "uniform")
  local scales = {}
  for name in pairs(scores) do scales[name] = 1 end
  return scales
end

-- The opposite direction: the most general-critical unit learns fastest.
function M.inverted(scores, opts)
  local scales, info = M.decoupled(scores, opts)
  local max_scale = (opts and opts.max_scale) or 2
  for name, w in pairs(scales) do scales[name] = max_scale - w end
  return scales, info
end

-- The decoupled multipliers dealt to units at random (same multiset, no relation to importance).
function M.shuffled(scores, opts)
  local scales = M.decoupled(scores, opts)
  local names, values = {}, {}
  for name in pairs(scales) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do values[i] = scales[name] end
  local seed = (opts and opts.seed) or 0
  local state = math.random(0)
  math.randomseed(seed)
  for i = #values, 2, -1 do
    local j = math.random(i)
    values[i], values[j] = values[j], values[i]
  end
  math.randomseed(state)
  local out = {}
  for i, name in ipairs(names) do out[name] = values[i] end
  return out
end

return M
