-- Learning-rate policies over parameter units: ADEPT's decoupled rule and the controls its ablations
-- compare against. A policy maps unit scores {name -> importance} to multipliers {name -> scale} that
-- opt:set_lr_scales applies on top of the schedule (lr_unit(t) = lr * schedule(t) * scale, no compounding).
local M = {}

local function adept_tensor(values) return require("adept").tensor(values) end

-- The normalisation group a unit falls into, from the model's parameter table (m:params(): kind and layer come
-- from the engine, never from the names). info maps a name to its row.
local groupers = {
  all = function() return "all" end,
  -- norms apart from matrices: |theta| of a norm is ~1 against ~0.1 for a matrix, so with one group the
  -- norms take the whole range (the official DeepSpeed variant separates them the same way)
  by_kind = function(name, info) return info[name].norm and "norm" or "matrix" end,
  by_layer = function(name, info) return "layer" .. tostring(info[name].layer) end,
}

-- name -> parameter row of opts.model, checked to hold every scored unit; nil for normalize = "all"
local function rows_of(scores, opts, normalize, fname)
  if normalize == "all" then return nil end
  local m = opts.model
  if type(m) ~= "userdata" or type(m.params) ~= "function" then
    error(("adept.lr.%s: normalize = %q needs opts.model (the model whose parameter table gives each unit's kind "
      .. "and layer), got %s"):format(fname, normalize, type(m)), 3)
  end
  local info = {}
  for _, p in ipairs(m:params()) do info[p.name] = p end
  for name in pairs(scores) do
    if not info[name] then error(("adept.lr.%s: %s is not a parameter of opts.model"):format(fname, name), 3) end
  end
  return info
end

local function is_tensor(v) return type(v) == "userdata" and type(v.table) == "function" end

local function check_scores(scores, fname)
  if type(scores) ~= "table" then
    error(("adept.lr.%s: unit scores must be a table {name -> importance}, got %s"):format(fname, type(scores)), 3)
  end
  for name, s in pairs(scores) do
    local ok = type(name) == "string" and ((type(s) == "number" and s == s) or (type(s) == "userdata" and is_tensor(s)))
    if not ok then
      error(("adept.lr.%s: scores must map tensor names to numbers or row-score tensors (got %s -> %s)"):format(
        fname, tostring(name), tostring(s)), 3)
    end
  end
end

-- A score's values as a flat Lua array (a number is one value).
local function values_of(s)
  if type(s) == "number" then return {s} end
  local t = s:table()
  return t
end

-- ADEPT stage 2: w = max_scale * (Imax - I) / (Imax - Imin) within each group; all equal -> 1.
-- The most general-critical unit gets 0, the least gets max_scale. Row scores (tensors from
-- importance.units{granularity="row"}) give row multipliers (f32 tensors), min/max taken over every row of
-- the group. Returns the scales and a summary {groups=, near_zero=, normalize=} (near_zero: units or rows with
-- w < 0.05, which the method effectively freezes).
function M.decoupled(scores, opts)
  check_scores(scores, "decoupled")
  opts = opts or {}
  local max_scale = opts.max_scale or 2
  if type(max_scale) ~= "number" or max_scale < 0 then
    error("adept.lr.decoupled: max_scale must be a number >= 0, got " .. tostring(max_scale), 2)
  end
  local normalize = opts.normalize or "all"
  local group_of = groupers[normalize]
  if not group_of then
    error(("adept.lr.decoupled: normalize must be \"all\", \"by_kind\" or \"by_layer\", got %q"):format(
      tostring(normalize)), 2)
  end
  local info = rows_of(scores, opts, normalize, "decoupled")
  local lo, hi, vals = {}, {}, {}
  for name, s in pairs(scores) do
    local g = group_of(name, info)
    vals[name] = values_of(s)
    for i, v in ipairs(vals[name]) do
      -- math.min/max skip a NaN, which would then turn every scale of its group into NaN
      if v ~= v then error(("adept.lr.decoupled: the score of %s (entry %d) is NaN"):format(name, i), 2) end
      lo[g] = math.min(lo[g] or math.huge, v)
      hi[g] = math.max(hi[g] or -math.huge, v)
    end
  end
  local scales, near_zero, n_groups = {}, 0, 0
  for _ in pairs(lo) do n_groups = n_groups + 1 end
  for name, s in pairs(scores) do
    local g = group_of(name, info)
    local ws = {}
    for i, v in ipairs(vals[name]) do
      local w = hi[g] > lo[g] and max_scale * (hi[g] - v) / (hi[g] - lo[g]) or 1
      ws[i] = w
      if w < 0.05 then near_zero = near_zero + 1 end
    end
    scales[name] = type(s) == "number" and ws[1] or adept_tensor(ws)
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
  for name, w in pairs(scales) do
    scales[name] = type(w) == "number" and max_scale - w or w:mul(-1):add(max_scale)
  end
  return scales, info
end

-- The decoupled multipliers dealt to units at random (same multiset, no relation to importance).
function M.shuffled(scores, opts)
  local scales = M.decoupled(scores, opts)
  for name, w in pairs(scales) do
    if type(w) ~= "number" then
      error("adept.lr.shuffled: tensor-granularity scores expected (a number per unit), " .. name .. " has rows", 2)
    end
  end
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

local policies = {decoupled = M.decoupled, uniform = M.uniform, inverted = M.inverted, shuffled = M.shuffled}

-- ADEPT's dynamic stage 2 as an adept.train callback:
--   local refresh = adept.lr.refresher(m, opt, probe, {every=500, normalize="by_kind"})
--   adept.train{..., every = {[refresh.every] = refresh.fn}}
-- Each call scores the trainable units on the probe (adept.importance.units, gradients cleared afterwards),
-- maps them through the policy (default "decoupled"; "uniform", "inverted", "shuffled" for ablations) and
-- sets opt:set_lr_scales. adept.train calls it at steps every, 2*every, ... (never at step 0, where the
-- zero-initialised copies score 0) and logs the changed scales to metrics.jsonl as an "lr_scales" event.
-- opts: every (default 500), granularity ("tensor"|"row"), normalize, max_scale, policy, seed (shuffled),
-- batches (when probe is a dataset), log (optional path: one JSON line per refresh with the unit scores and
-- scales, rows included). refresher.history holds {step=, seconds=, near_zero=, groups=} per refresh.
function M.refresher(m, opt, probe, opts)
  opts = opts or {}
  local every = opts.every or 500
  if math.type(every) ~= "integer" or every < 1 then
    error("adept.lr.refresher: every must be an integer >= 1, got " .. tostring(every), 2)
  end
  local policy = policies[opts.policy or "decoupled"]
  if not policy then
    error(("adept.lr.refresher: policy must be decoupled, uniform, inverted or shuffled, got %q"):format(
      tostring(opts.policy)), 2)
  end
  local adept = require "adept"
  local r = {every = every, history = {}}
  function r.fn(ctx)
    local t0 = adept.now()
    local scores = adept.importance.units(m, probe, {granularity = opts.granularity, batches = opts.batches})
    local scales, info = policy(scores, {max_scale = opts.max_scale, normalize = opts.normalize, seed = opts.seed,
                                         model = m})
    opt:set_lr_scales(scales)
    local entry = {step = ctx and ctx.step, seconds = adept.now() - t0, near_zero = info and info.near_zero,
                   groups = info and info.groups, normalize = opts.normalize or "all", policy = opts.policy or "decoupled"}
    r.history[#r.history + 1] = entry
    r.last_scores, r.last_scales = scores, scales
    if opts.log then
      local function plain(map)
        local out = {}
        for k, v in pairs(map) do out[k] = type(v) == "number" and v or v:table() end
        return out
      end
      local f = assert(io.open(opts.log, "a"))
      f:write(adept.json.encode({type = "lr_refresh", step = entry.step, seconds = entry.seconds,
        near_zero = entry.near_zero, normalize = entry.normalize, policy = entry.policy,
        scores = plain(scores), scales = plain(scales)}), "\n")
      f:close()
    end
  end
  return r
end

return M
