-- ADEPT importance measurements on a general probe set: layer scores for stage 1 (which layers to expand)
-- and unit scores for stage 2 (per-tensor learning rates). Built from model primitives; padding (target -1)
-- never counts because the model's loss ignores it.
local adept = require "adept"

local M = {}

-- probe: an array of batches, or a dataset (its first `batches` batches, default 8).
local function probe_batches(probe, opts, fname)
  if type(probe) == "table" and probe[1] ~= nil then return probe end
  if type(probe) == "table" and #probe == 0 and getmetatable(probe) == nil then
    error(("adept.importance.%s: the probe holds no batches"):format(fname), 3)
  end
  local ok, take = pcall(function() return probe.take end)
  if ok and type(take) == "function" then return probe:take(opts.batches or 8) end
  error(("adept.importance.%s: probe must be an array of batches or a dataset, got %s"):format(
    fname, type(probe)), 3)
end

-- Token-weighted mean NLL over the probe (m:loss returns the batch mean and its token count).
local function probe_loss(m, batches)
  local total, tokens = 0, 0
  for _, b in ipairs(batches) do
    local loss, n = m:loss(b)
    n = n or 1
    total = total + loss * n
    tokens = tokens + n
  end
  return total / tokens, tokens
end

local function layer_of(name) return tonumber(name:match("^model%.layers%.(%d+)%.")) end
local function kind_of(name) return name:match("^model%.layers%.%d+%.(.+)$") end

-- Runs fn with every tensor trainable (so gradients exist), restoring the trainable set afterwards
-- and clearing gradients so nothing leaks into the next training step.
local function with_all_trainable(m, fn)
  local was = {}
  for _, name in ipairs(m:param_names()) do was[name] = m:grad(name) ~= nil end
  m:unfreeze("all")
  m:zero_grad()
  local ok, err = pcall(fn)
  m:zero_grad()
  for name, trainable in pairs(was) do
    if not trainable then m:freeze("^" .. name:gsub("%p", "%%%0") .. "$") end
  end
  if not ok then error(err, 0) end
end

-- Per-tensor sums over probe batches of a function of (gradient, value), for the decoder layers.
local function per_tensor_gradient_stat(m, batches, stat)
  local sums = {}
  with_all_trainable(m, function()
    for _, b in ipairs(batches) do
      m:zero_grad()
      m:loss_and_grad(b)
      for _, name in ipairs(m:param_names()) do
        if layer_of(name) then sums[name] = (sums[name] or 0) + stat(m:grad(name), m:param(name)) end
      end
    end
  end)
  for name, s in pairs(sums) do sums[name] = s / #batches end
  return sums
end

local function sum_by_layer(per_tensor, n_layers)
  local scores = {}
  for l = 0, n_layers - 1 do scores[l] = 0 end
  for name, s in pairs(per_tensor) do
    local l = layer_of(name)
    scores[l] = scores[l] + s
  end
  return scores
end

local metrics = {}

-- Loss increase when the layer is skipped (its block output replaced by the residual identity).
function metrics.mask_out(m, batches)
  local base = probe_loss(m, batches)
  local scores = {}
  for l = 0, m:num_layers() - 1 do
    local skipped
    m:with_layers_skipped({l}, function() skipped = probe_loss(m, batches) end)
    scores[l] = skipped - base
  end
  return scores, {base_loss = base}
end

-- Cumulative importance: sum over the layer's tensors of sum |dL/dθ ⊙ θ| (batch-averaged).
function metrics.grad_weight(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g, p) return g:mul(p):abs():sum() end)
  return sum_by_layer(per_tensor, m:num_layers()), {per_tensor = per_tensor}
end

-- Rank aggregation over tensor types: rank the layers by each type's |g ⊙ θ| (1 = most important), then
-- 1 - mean over types of rank / L.
function metrics.rank(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g, p) return g:mul(p):abs():sum() end)
  local L = m:num_layers()
  local by_kind = {}
  for name, s in pairs(per_tensor) do
    local kind = kind_of(name)
    by_kind[kind] = by_kind[kind] or {}
    table.insert(by_kind[kind], {layer = layer_of(name), score = s})
  end
  local rank_sum, n_kinds = {}, 0
  for l = 0, L - 1 do rank_sum[l] = 0 end
  for _, list in pairs(by_kind) do
    n_kinds = n_kinds + 1
    table.sort(list, function(a, b)
      if a.score ~= b.score then return a.score > b.score end
      return a.layer < b.layer
    end)
    for r, item in ipairs(list) do rank_sum[item.layer] = rank_sum[item.layer] + r / L end
  end
  local scores = {}
  for l = 0, L - 1 do scores[l] = 1 - rank_sum[l] / n_kinds end
  return scores
end

-- Empirical diagonal Fisher: sum over the layer's parameters of (dℓ/dθ)², averaged over probe batches
-- (squared micro-batch gradients: the cheap variant, stated in importance.json).
function metrics.fisher(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g) return g:square():sum() end)
  return sum_by_layer(per_tensor, m:num_layers()), {per_tensor = per_tensor, variant = "squared batch gradients"}
end

-- ShortGPT block influence: 1 - cosine(layer input, layer output), averaged over tokens.
function metrics.block_influence(m, batches)
  local sums, count = {}, 0
  for _, b in ipairs(batches) do
    local bi, n = m:block_influence(b)
    for l, v in pairs(bi) do sums[l] = (sums[l] or 0) + v * n end
    count = count + n
  end
  for l, v in pairs(sums) do sums[l] = v / count end
  return sums
end

local function describe_probe(batches)
  local shape = batches[1].inputs and batches[1].inputs:shape() or batches[1]:shape()
  return {batches = #batches, batch_shape = shape}
end

-- scores = adept.importance.layers(m, probe, {metric=, out=}) -> {layer -> score}, and writes
-- importance.json to `out` (a file path, or a directory) when given.
function M.layers(m, probe, opts)
  opts = opts or {}
  local metric = opts.metric or "mask_out"
  local fn = metrics[metric]
  if not fn then
    local names = {}
    for k in pairs(metrics) do names[#names + 1] = k end
    table.sort(names)
    error(("adept.importance.layers: unknown metric %q (expected one of %s)"):format(
      tostring(metric), table.concat(names, ", ")), 2)
  end
  local batches = probe_batches(probe, opts, "layers")
  local t0 = adept.now()
  local scores, extra = fn(m, batches)
  local record = {metric = metric, probe = describe_probe(batches), seconds = adept.now() - t0,
    scores = {}, extra = extra}
  for l, s in pairs(scores) do record.scores[tostring(l)] = s end
  if opts.out then
    local path = opts.out:match("%.json$") and opts.out or (opts.out .. "/importance.json")
    local f = assert(io.open(path, "w"))
    f:write(adept.json.encode(record), "\n")
    f:close()
  end
  return scores, record
end

-- Stage 2 unit importance over the trainable tensors: I_u = mean(|θ| ⊙ mean over batches of |dL/dθ|)
-- (granularity "tensor"), or that mean per row (granularity "row": a tensor of per-row scores).
-- Gradients are cleared afterwards, so nothing leaks into the next training step.
function M.units(m, probe, opts)
  opts = opts or {}
  local granularity = opts.granularity or "tensor"
  if granularity ~= "tensor" and granularity ~= "row" then
    error(('adept.importance.units: granularity must be "tensor" or "row", got %q'):format(
      tostring(granularity)), 2)
  end
  local batches = probe_batches(probe, opts, "units")
  local names = {}
  for _, name in ipairs(m:param_names()) do
    if m:grad(name) ~= nil then names[#names + 1] = name end
  end
  if #names == 0 then error("adept.importance.units: the model has no trainable tensor", 2) end
  local abs_grad = {}
  m:zero_grad()
  for _, b in ipairs(batches) do
    m:loss_and_grad(b)
    for _, name in ipairs(names) do
      local g = m:grad(name):abs()
      abs_grad[name] = abs_grad[name] and abs_grad[name]:add(g) or g
    end
    m:zero_grad()
  end
  local scores = {}
  for _, name in ipairs(names) do
    local weighted = m:param(name):abs():mul(abs_grad[name]):div(#batches)
    if granularity == "tensor" then
      scores[name] = weighted:mean()
    else
      scores[name] = #weighted:shape() == 2 and weighted:mean(2) or weighted
    end
  end
  return scores
end

M.metrics = metrics
return M
