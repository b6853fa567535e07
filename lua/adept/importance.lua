-- ADEPT importance measurements on a general probe set: layer scores for stage 1 (which layers to expand)
-- and unit scores for stage 2 (per-tensor learning rates). Padding (target -1) never counts anywhere.
--
-- Choices (see docs/adept.md): every loss is the token-weighted mean NLL over the probe; gradient metrics use
-- the gradient of each probe batch's mean loss (one backward per batch, as the official code does), averaged
-- over batches. Measurements leave the model as they found it: trainable set restored, skip flags restored,
-- gradients of trainable tensors zero afterwards (so probe gradients never leak into a training step).
local adept = require "adept"

local M = {}

-- probe: an array of batches, or a dataset / split (its first opts.batches batches, default 8).
-- A mixed probe (adept.probe{text =, instructions =, mix =}) is returned as it is; see mixed_* below.
local function is_mixed(probe) return require("adept.probe").is_probe(probe) end

local function probe_batches(probe, opts, fname)
  if is_mixed(probe) then
    local active = probe:active_parts()
    -- one part with weight 1 (mix = 0 or 1): exactly that part's probe, nothing of the other is evaluated
    if #active == 1 then return active[1].batches end
    return probe
  end
  if type(probe) == "table" and probe[1] ~= nil then return probe end
  local ok, take = pcall(function() return probe.take end)
  if ok and type(take) == "function" then
    local batches = probe:take(opts.batches or 8)
    if #batches > 0 then return batches end
  end
  if type(probe) == "table" and probe[1] == nil then
    error(("adept.importance.%s: the probe holds no batches"):format(fname), 3)
  end
  error(("adept.importance.%s: probe must be an array of batches or a dataset, got %s"):format(
    fname, type(probe)), 3)
end

-- name -> {layer=, kind=} from the model's parameter table (the engine's own fields, not the names)
local function rows_by_name(m)
  local rows = {}
  for _, p in ipairs(m:params()) do rows[p.name] = p end
  return rows
end

-- Runs fn with exactly the decoder-layer tensors trainable (embeddings, final norm and head stay frozen:
-- no gradient memory for them), then restores the caller's trainable set (one engine call each way, from the
-- parameter table's own layer and trainable fields). Gradients are zero afterwards.
local function with_layers_trainable(m, fn)
  local was, layers = {}, {}
  for _, p in ipairs(m:params()) do
    if p.trainable then was[#was + 1] = p.name end
    if p.layer then layers[#layers + 1] = p.name end
  end
  m:set_trainable(layers)
  m:zero_grad()
  local ok, err = pcall(fn)
  m:set_trainable(was)
  m:zero_grad()
  if not ok then error(err, 0) end
end

-- Per-tensor mean over probe batches of stat(gradient of the batch mean loss, value), decoder layers only.
-- Under N processes (adept.dist) every probe pass is split: rank r takes batches r+1, r+1+N, ... and the sums
-- are reduced in rank order (adept.dist.sum / all_reduce), so every rank ends with the same scores.
local function my_batch(i)
  return (i - 1) % adept.dist.world_size() == adept.dist.rank()
end

-- Sums a list of numbers over the ranks (one process: the list itself).
local function sum_over_ranks(values)
  if adept.dist.world_size() == 1 then return values end
  return adept.dist.sum(values)
end

-- Probe step i of a mixed probe pairs text batch i with instruction batch i (the shorter part cycles), so the
-- number of gradient steps is the longer part's batch count.
local function gradient_steps(probe)
  if not is_mixed(probe) then return #probe end
  return math.max(#probe.parts[1].batches, #probe.parts[2].batches)
end

-- Calls fn(grad_of(name)) with the gradient of probe step i's loss, leaving gradients zero afterwards. For a
-- plain probe the loss is batch i's mean NLL; for a mixed probe it is mix * L_text,i + (1 - mix) * L_instr,i
-- (each the mean NLL of that part's batch), whose gradient is the same weighted sum of the two gradients.
local function with_step_gradient(m, probe, i, names, fn)
  if not is_mixed(probe) then
    m:zero_grad()
    m:loss_and_grad(probe[i])
    fn(function(name) return m:grad(name) end)
    m:zero_grad()
    return
  end
  local acc = {}
  for _, part in ipairs(probe.parts) do
    local b = part.batches[(i - 1) % #part.batches + 1]
    m:zero_grad()
    m:loss_and_grad(b)
    for _, name in ipairs(names) do
      local g = m:grad(name):mul(part.weight)
      acc[name] = acc[name] and acc[name]:add(g) or g
    end
  end
  m:zero_grad()
  fn(function(name) return acc[name] end)
end

local function per_tensor_gradient_stat(m, batches, stat)
  local sums, names = {}, {}
  for _, p in ipairs(m:params()) do
    if p.layer then names[#names + 1] = p.name; sums[p.name] = 0 end
  end
  local steps = gradient_steps(batches)
  with_layers_trainable(m, function()
    for i = 1, steps do
      if my_batch(i) then
        with_step_gradient(m, batches, i, names, function(grad)
          for _, name in ipairs(names) do sums[name] = sums[name] + stat(grad(name), m:param(name)) end
        end)
      end
    end
  end)
  local list = {}
  for i, name in ipairs(names) do list[i] = sums[name] end
  list = sum_over_ranks(list)
  for i, name in ipairs(names) do sums[name] = list[i] / steps end
  return sums
end

-- Sums in the parameter table's order: pairs() order varies between Lua states (string hashes are seeded per
-- process), and a sum in another order would give ranks (or two runs) different bits.
local function sum_by_layer(m, per_tensor)
  local scores = {}
  for l = 0, m:num_layers() - 1 do scores[l] = 0 end
  for _, p in ipairs(m:params()) do
    local s = per_tensor[p.name]
    if s then scores[p.layer] = scores[p.layer] + s end
  end
  return scores
end

local metrics, formulas = {}, {}

-- Loss increase when the layer is skipped (residual identity). m:mask_out keeps every layer's input from one
-- full pass and resumes the forward pass at the skipped layer, so layers below it are not recomputed.
formulas.mask_out = "I_l = NLL(model with layer l skipped) - NLL(model), token-weighted means over the probe"
-- Under N processes (adept.dist) rank r scores the probe batches r+1, r+1+N, ... and the sums are reduced in
-- rank order, so every rank gets the same scores (and selects the same layers).
function metrics.mask_out(m, batches)
  local base, skipped, tokens, evals, naive = 0, {}, 0, 0, 0
  local L, rank, world = m:num_layers(), adept.dist.rank(), adept.dist.world_size()
  for l = 0, L - 1 do skipped[l] = 0 end
  for i, b in ipairs(batches) do
    if (i - 1) % world == rank then
      local r = m:mask_out(b)
      base = base + r.base_nll
      for l, v in pairs(r.skip_nll) do skipped[l] = skipped[l] + v end
      tokens, evals, naive = tokens + r.tokens, evals + r.layer_evals, naive + r.naive_evals
    end
  end
  if world > 1 then
    local sums = {base, tokens, evals, naive}
    for l = 0, L - 1 do sums[#sums + 1] = skipped[l] end
    sums = adept.dist.sum(sums)
    base, tokens, evals, naive = sums[1], sums[2], sums[3], sums[4]
    for l = 0, L - 1 do skipped[l] = sums[5 + l] end
  end
  if tokens == 0 then error("adept.importance.layers: the probe has no counted target (all padding)", 3) end
  local scores = {}
  for l = 0, m:num_layers() - 1 do scores[l] = (skipped[l] - base) / tokens end
  return scores, {base_loss = base / tokens, tokens = tokens, layer_evals = evals, naive_layer_evals = naive,
                  saving = naive > 0 and 1 - evals / naive or 0}
end

-- The official ADEPT code's averaging of the same loss increase: the mean over probe batches of each batch's
-- mean NLL (PruningImportanceAnalyzer), so a batch with few counted targets weighs as much as a full one.
-- recipes/ablations/official.lua uses it; mask_out (token-weighted) is the default because it is the mean
-- loss over the probe's tokens whatever the batching.
formulas.mask_out_batches = "I_l = mean_b NLL_b(model with layer l skipped) - mean_b NLL_b(model), NLL_b = mean over batch b's targets"
function metrics.mask_out_batches(m, batches)
  local L, rank, world = m:num_layers(), adept.dist.rank(), adept.dist.world_size()
  local sums = {0, 0} -- base, counted batches, then one per layer
  for l = 0, L - 1 do sums[3 + l] = 0 end
  for i, b in ipairs(batches) do
    if (i - 1) % world == rank then
      local r = m:mask_out(b)
      if r.tokens > 0 then
        sums[1], sums[2] = sums[1] + r.base_nll / r.tokens, sums[2] + 1
        for l, v in pairs(r.skip_nll) do sums[3 + l] = sums[3 + l] + v / r.tokens end
      end
    end
  end
  if world > 1 then sums = adept.dist.sum(sums) end
  if sums[2] == 0 then error("adept.importance.layers: the probe has no counted target (all padding)", 3) end
  local scores = {}
  for l = 0, L - 1 do scores[l] = (sums[3 + l] - sums[1]) / sums[2] end
  return scores, {base_loss = sums[1] / sums[2], batches = sums[2]}
end

-- Cumulative importance: sum over the layer's tensors of sum |dL/dθ ⊙ θ| (batch-averaged).
formulas.grad_weight = "I_l = sum over tensors p of layer l of (1/B) sum_batches sum_elements |dL_b/dθ * θ|"
function metrics.grad_weight(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g, p) return g:mul(p):abs():sum() end)
  return sum_by_layer(m, per_tensor), {per_tensor = per_tensor}
end

-- Rank aggregation over tensor types: rank the layers by each type's |g ⊙ θ| (1 = most important), then
-- 1 - mean over types of rank / L.
formulas.rank = "I_l = 1 - mean over tensor types m of r_m(l)/L, r_m = rank of layer l by S_p = (1/B) sum |g*θ| (1 = largest)"
function metrics.rank(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g, p) return g:mul(p):abs():sum() end)
  local L = m:num_layers()
  local by_kind, rows = {}, rows_by_name(m)
  for name, s in pairs(per_tensor) do
    local kind = rows[name].kind
    by_kind[kind] = by_kind[kind] or {}
    table.insert(by_kind[kind], {layer = rows[name].layer, score = s})
  end
  local rank_sum, n_kinds = {}, 0
  for l = 0, L - 1 do rank_sum[l] = 0 end
  local kinds = {}
  for kind in pairs(by_kind) do kinds[#kinds + 1] = kind end
  table.sort(kinds)
  for _, kind in ipairs(kinds) do
    local list = by_kind[kind]
    n_kinds = n_kinds + 1
    table.sort(list, function(a, b)
      if a.score ~= b.score then return a.score > b.score end
      return a.layer < b.layer
    end)
    for r, item in ipairs(list) do rank_sum[item.layer] = rank_sum[item.layer] + r / L end
  end
  local scores = {}
  for l = 0, L - 1 do scores[l] = 1 - rank_sum[l] / n_kinds end
  return scores, {per_tensor = per_tensor, tensor_types = kinds}
end

-- Empirical diagonal Fisher with squared micro-batch gradients (the cheap variant; per-sample gradients would
-- need one backward per sequence): sum over the layer's parameters, averaged over probe batches.
formulas.fisher = "I_l = (1/B) sum_batches sum_{θ in layer l} (dL_b/dθ)^2, L_b = mean token NLL of probe batch b"
function metrics.fisher(m, batches)
  local per_tensor = per_tensor_gradient_stat(m, batches, function(g) return g:square():sum() end)
  return sum_by_layer(m, per_tensor), {per_tensor = per_tensor, variant = "squared batch gradients"}
end

-- ShortGPT block influence: 1 - cosine(layer input, layer output), averaged over counted (non-padding) tokens.
formulas.block_influence = "I_l = mean over non-padding tokens t of 1 - cos(h_l[t], h_{l+1}[t]) (residual stream)"
function metrics.block_influence(m, batches)
  local L = m:num_layers()
  local list = {0} -- counted tokens, then one weighted sum per layer
  for l = 0, L - 1 do list[2 + l] = 0 end
  for i, b in ipairs(batches) do
    if my_batch(i) then
      local bi, n = m:block_influence(b)
      for l, v in pairs(bi) do list[2 + l] = list[2 + l] + v * n end
      list[1] = list[1] + n
    end
  end
  list = sum_over_ranks(list)
  local count, sums = list[1], {}
  if count == 0 then error("adept.importance.layers: the probe has no counted target (all padding)", 3) end
  for l = 0, L - 1 do sums[l] = list[2 + l] / count end
  return sums, {tokens = count}
end

local function batch_shape(b)
  if type(b) == "table" and b.inputs then
    return type(b.inputs) == "table" and {#b.inputs, #(b.inputs[1] or {})} or b.inputs:shape()
  end
  if type(b) == "table" then return {#b, #(b[1] or {}) - 1} end
  local s = b:shape()
  return {s[1], s[2] - 1}
end

local function describe_probe(batches, opts)
  if is_mixed(batches) then
    local t, i = batches.parts[1].batches, batches.parts[2].batches
    return {mix = batches.mix, description = opts.probe_name,
            text = {batches = #t, batch_shape = batch_shape(t[1])},
            instructions = {batches = #i, batch_shape = batch_shape(i[1])}}
  end
  return {batches = #batches, batch_shape = batch_shape(batches[1]), description = opts.probe_name}
end

-- Metrics that are a loss difference or a per-token statistic of the probe: on a mixed probe each part is scored
-- on its own and the scores are combined with the part weights (for mask_out this is exactly the increase of
-- the mixed loss mix * L_text + (1 - mix) * L_instructions). Gradient metrics take the mixed probe itself.
local combined_by_parts = {mask_out = true, mask_out_batches = true, block_influence = true}

local function mixed_layer_scores(fn, m, probe)
  local scores, details = {}, {mix = probe.mix, parts = {}}
  for l = 0, m:num_layers() - 1 do scores[l] = 0 end
  for _, part in ipairs(probe.parts) do
    local s, extra = fn(m, part.batches)
    for l = 0, m:num_layers() - 1 do scores[l] = scores[l] + part.weight * s[l] end
    details.parts[part.name] = extra
  end
  return scores, details
end

local function write_json(path, record)
  if not adept.dist.is_main() then return end -- one writer under several processes
  local f = assert(io.open(path, "w"))
  f:write(adept.json.encode(record), "\n")
  f:close()
end

-- scores, record = adept.importance.layers(m, probe, {metric=, out=, batches=, probe_name=})
-- scores: {layer -> score} (0-based). Writes importance.json to `out` (a .json path, or a directory).
function M.layers(m, probe, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"metric", "metric_name", "out", "batches", "probe_name"}, "adept.importance.layers")
  local metric = opts.metric or "mask_out"
  local fn = type(metric) == "function" and metric or metrics[metric] -- a name in the registry, or the function itself
  if not fn then
    local names = {}
    for k in pairs(metrics) do names[#names + 1] = k end
    table.sort(names)
    error(("adept.importance.layers: unknown metric %q (expected one of %s)"):format(
      tostring(metric), table.concat(names, ", ")), 2)
  end
  local batches = probe_batches(probe, opts, "layers")
  local t0 = adept.now()
  local scores, extra
  if is_mixed(batches) and (type(metric) == "function" or combined_by_parts[metric] or batches.combine == "scores") then
    scores, extra = mixed_layer_scores(fn, m, batches)
  else
    scores, extra = fn(m, batches)
  end
  local record = {metric = type(metric) == "function" and (opts.metric_name or "<function>") or metric,
    formula = formulas[metric], probe = describe_probe(batches, opts),
    seconds = adept.now() - t0, num_layers = m:num_layers(), scores = {}, details = extra}
  local ranking = {}
  for l = 0, m:num_layers() - 1 do
    record.scores[tostring(l)] = scores[l]
    ranking[#ranking + 1] = l
  end
  table.sort(ranking, function(a, b)
    if scores[a] ~= scores[b] then return scores[a] < scores[b] end
    return a < b
  end)
  record.ranking_least_important_first = ranking
  local note = extra and extra.naive_layer_evals and (" (%d of the naive %d layer evaluations)"):format(
    extra.layer_evals, extra.naive_layer_evals) or ""
  adept.log("info", ("adept.importance.layers: %s over %d probe batches in %.2f s%s"):format(
    tostring(record.metric), gradient_steps(batches), record.seconds, note))
  if opts.out then
    write_json(opts.out:match("%.json$") and opts.out or (opts.out .. "/importance.json"), record)
  end
  return scores, record
end

-- An elementwise score tensor reduced to a unit's score: its mean (granularity "tensor"), or one mean per row
-- ("row"; a 1-D tensor's rows are its elements). Shared by unit importance and TaSL's localisation.
function M.unit_score(t, granularity)
  if granularity == "tensor" then return t:mean() end
  return #t:shape() == 2 and t:mean(2) or t
end

-- Stage 2 unit importance over the trainable tensors: I_u = mean(|θ| ⊙ mean over batches of |dL/dθ|)
-- (granularity "tensor": a number per tensor), or that mean per row (granularity "row": an f32 tensor with one
-- entry per row, the form opt:set_lr_scales takes; a 1-D tensor's rows are its elements).
-- Gradients are zero afterwards, so nothing leaks into the next training step.
function M.units(m, probe, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"granularity", "out", "batches", "probe_name"}, "adept.importance.units")
  local granularity = opts.granularity or "tensor"
  if granularity ~= "tensor" and granularity ~= "row" then
    error(('adept.importance.units: granularity must be "tensor" or "row", got %q'):format(
      tostring(granularity)), 2)
  end
  local batches = probe_batches(probe, opts, "units")
  if is_mixed(batches) and batches.combine == "scores" then
    -- the official code's mix: each part's unit scores, weighted (tensors for granularity "row")
    local mixed
    for _, part in ipairs(batches.parts) do
      local s = M.units(m, part.batches, {granularity = granularity})
      if not mixed then
        mixed = {}
        for name, v in pairs(s) do mixed[name] = type(v) == "number" and part.weight * v or v:mul(part.weight) end
      else
        for name, v in pairs(s) do
          mixed[name] = type(v) == "number" and mixed[name] + part.weight * v or mixed[name]:add(v:mul(part.weight))
        end
      end
    end
    if opts.out then
      local rec = {granularity = granularity, probe = describe_probe(batches, opts), combine = "scores",
                   formula = "I_u = mix * I_u(text) + (1 - mix) * I_u(instructions)", scores = {}}
      for name, v in pairs(mixed) do rec.scores[name] = type(v) == "number" and v or v:table() end
      write_json(opts.out, rec)
    end
    return mixed
  end
  local names = {}
  for _, p in ipairs(m:params()) do
    if p.trainable then names[#names + 1] = p.name end
  end
  if #names == 0 then error("adept.importance.units: the model has no trainable tensor", 2) end
  local abs_grad = {}
  local steps = gradient_steps(batches)
  m:zero_grad()
  local ok, err = pcall(function()
    for i = 1, steps do
      if my_batch(i) then
        with_step_gradient(m, batches, i, names, function(grad)
          for _, name in ipairs(names) do
            local g = grad(name):abs()
            abs_grad[name] = abs_grad[name] and abs_grad[name]:add(g) or g
          end
        end)
      end
    end
    if adept.dist.world_size() > 1 then -- the sums of |gradient| over every rank's batches, in rank order
      for _, name in ipairs(names) do
        abs_grad[name] = abs_grad[name] or m:grad(name):abs() -- zeros on the model's device (no batch here)
        adept.dist.all_reduce(abs_grad[name])
      end
    end
  end)
  m:zero_grad()
  if not ok then error(err, 0) end
  local scores = {}
  for _, name in ipairs(names) do
    scores[name] = M.unit_score(m:param(name):abs():mul(abs_grad[name]):div(steps), granularity)
  end
  if opts.out then
    local rec = {granularity = granularity, probe = describe_probe(batches, opts),
                 formula = "I_u = mean(|θ| * (1/B) sum_batches |dL_b/dθ|)", scores = {}}
    for name, s in pairs(scores) do rec.scores[name] = type(s) == "number" and s or s:table() end
    write_json(opts.out, rec)
  end
  return scores
end

-- Spearman rank correlation between two {layer -> score} maps over their common layers (average ranks for
-- ties), for comparing importance metrics; nil when fewer than two layers or a ranking is constant.
function M.spearman(a, b)
  local layers = {}
  for l in pairs(a) do if b[l] ~= nil then layers[#layers + 1] = l end end
  table.sort(layers)
  local n = #layers
  if n < 2 then return nil end
  local function ranks(scores)
    local order = {}
    for i, l in ipairs(layers) do order[i] = {l = l, s = scores[l]} end
    table.sort(order, function(x, y) if x.s ~= y.s then return x.s < y.s end return x.l < y.l end)
    local r, i = {}, 1
    while i <= n do
      local j = i
      while j < n and order[j + 1].s == order[i].s do j = j + 1 end
      for k = i, j do r[order[k].l] = (i + j) / 2 end
      i = j + 1
    end
    return r
  end
  local ra, rb = ranks(a), ranks(b)
  local ma, mb = (n + 1) / 2, (n + 1) / 2
  local sab, saa, sbb = 0, 0, 0
  for _, l in ipairs(layers) do
    local x, y = ra[l] - ma, rb[l] - mb
    sab, saa, sbb = sab + x * y, saa + x * x, sbb + y * y
  end
  if saa == 0 or sbb == 0 then return nil end
  return sab / math.sqrt(saa * sbb)
end

M.metrics, M.formulas = metrics, formulas
return M
