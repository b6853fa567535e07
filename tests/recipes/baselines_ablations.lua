-- Recipe test: every recipe in recipes/baselines/ and recipes/ablations/ runs at a tiny budget on stories260K
-- (3 steps of 2 x 32 tokens, one probe batch) and shows what makes it that method, read back from its run
-- directory and its saved model against the base weights:
--   full_cpt    every tensor moves, no copies          llama_pro  copies at the uniform stride, originals bitwise
--   freeze_top  only the top k layers move              replay     round(r * tokens) general tokens mixed in
--   no_stage1   the k least important layers move in place, with LR refreshes
--   no_stage2   copies after the least important layers, one LR (no refresh)
--   placement   each variant's copies where its rule puts them; expansion_ratio: k copies for each k
--   importance_metrics  five metrics scored, each downstream run expands its metric's least important layers
--   lr_policy   uniform scales are 1, inverted = max_scale - decoupled (same scores), shuffled a permutation
--   official    the official code's metric averaging, normalisation, refresh interval and AdamW settings
-- (The baselines added by issue 15 — pt_lora, tasl — have their own recipe tests.) 77 without ../shared.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local root = assert(arg[0]:match("^(.*)/tests/recipes/[^/]*$") or (arg[0]:match("^tests/recipes/") and "."),
  "cannot locate the repository from " .. arg[0])
local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. "-recipes"
adept.fs.mkdir_p(tmp)
local t0 = adept.now()

local TINY = {model = model, general = shared .. "/corpora/tinystories_val.txt",
  domain = shared .. "/corpora/medquad.txt.gz", k = 2, steps = 3, refresh = 1, seq_len = 32, batch_size = 2,
  probe_batches = 1, eval_batches = 1, shift_batches = 1, max_documents = 100, seed = 0, progress = false,
  report = false}

-- runs recipes/<path> with the tiny options plus `extra`, as `adeptlua recipe k=v ...` would
local function run_recipe(path, out, extra)
  for k in pairs(adept.args) do adept.args[k] = nil end
  for k, v in pairs(TINY) do adept.args[k] = v end
  for k, v in pairs(extra or {}) do adept.args[k] = v end
  adept.args.out = out
  dofile(root .. "/recipes/" .. path)
end

local function read_json(path) return adept.json.read(path) end

local function same_list(a, b, what)
  local ok = #a == #b
  for i = 1, #a do ok = ok and a[i] == b[i] end
  assert(ok, ("%s: got {%s}, expected {%s}"):format(what, table.concat(a, ","), table.concat(b, ",")))
end

local base = adept.load(model .. "/stories260K.bin")
local L = base:num_layers()

-- Largest |change| of every tensor of saved model `m` against the base, where `orig_of(l)` maps a layer of m
-- to its original layer (nil for a copy): returns {name -> max |Δ|} for the originals and the copies' names.
local function changes(m, orig_of)
  local moved, copies = {}, {}
  for _, p in ipairs(m:params()) do
    local bname = p.name
    if p.layer and p.layer >= 0 then
      local o = orig_of(p.layer)
      if o == nil then copies[#copies + 1] = p.name; goto continue end
      bname = p.name:gsub("^model%.layers%.%d+%.", ("model.layers.%d."):format(o))
    end
    moved[p.name] = m:param(p.name):sub(base:param(bname)):abs():max()
    ::continue::
  end
  return moved, copies
end

-- the copies' original positions from the saved model's recorded copies (each follows its source layer)
local function orig_map(m)
  local is_copy = {}
  for _, l in ipairs(m:expanded_layers()) do is_copy[l] = true end
  local map, o = {}, 0
  for l = 0, m:num_layers() - 1 do
    if not is_copy[l] then map[l] = o; o = o + 1 end
  end
  return function(l) return map[l] end
end

local function baseline(name, extra)
  local out = tmp .. "/" .. name
  run_recipe("baselines/" .. name .. ".lua", out, extra)
  local s = read_json(out .. "/summary.json")
  local m = adept.load(out .. "/model")
  return s, m, out
end

-- full CPT: no copies, every tensor trains and moves
do
  local s, m = baseline("full_cpt")
  assert(m:num_layers() == L and #s.expanded_layers == 0 and s.trainable_share == 1, "full_cpt: expansion or frozen rows")
  local moved = changes(m, function(l) return l end)
  for name, d in pairs(moved) do assert(d > 0, "full_cpt: " .. name .. " did not move") end
  assert(s.lr_refreshes == 0, "full_cpt refreshed LRs")
end

-- LLaMA-Pro: copies after layers (i·L)//k − 1 for i = 1..k, only the copies move
do
  local s, m = baseline("llama_pro")
  same_list(s.expanded_from, adept.select.uniform(L, 2), "llama_pro copies")
  same_list(s.expanded_from, {1, 4}, "llama_pro uniform stride for L=5, k=2")
  local moved, copies = changes(m, orig_map(m))
  for name, d in pairs(moved) do assert(d == 0, ("llama_pro: original %s moved by %g"):format(name, d)) end
  assert(#copies > 0, "llama_pro: no copies saved")
  for _, l in ipairs(m:expanded_layers()) do
    assert(m:param(("model.layers.%d.mlp.down_proj.weight"):format(l)):abs():max() > 0, "llama_pro: copy " .. l .. " did not train")
  end
  assert(s.lr_refreshes == 0, "llama_pro refreshed LRs")
end

-- freeze-top: no copies; only layers L-k..L-1 move, embeddings, head, final norm and lower layers bitwise
do
  local s, m = baseline("freeze_top")
  same_list(s.trained_layers, {L - 2, L - 1}, "freeze_top trained layers")
  local moved = changes(m, function(l) return l end)
  for _, p in ipairs(m:params()) do
    local top = p.layer ~= nil and p.layer >= L - 2
    assert((moved[p.name] > 0) == top, ("freeze_top: %s moved by %g"):format(p.name, moved[p.name]))
  end
end

-- replay: the cumulative general share is round(r · tokens), everything trains
do
  local s = baseline("replay", {replay = 0.25})
  assert(s.replay == 0.25 and s.trainable_share == 1, "replay options")
  assert(s.replay_tokens == math.floor(0.25 * s.tokens + 0.5),
    ("replay: %d general tokens of %d, expected round(0.25 x)"):format(s.replay_tokens, s.tokens))
end

-- no stage 1: the k least important original layers train in place, with refreshed decoupled LRs
do
  local s, m, out = baseline("no_stage1")
  local imp = read_json(out .. "/importance.json")
  local scores = {}
  for l, v in pairs(imp.scores) do scores[math.tointeger(tonumber(l))] = v end
  same_list(s.trained_layers, adept.select.least_important(scores, 2), "no_stage1 trained layers")
  assert(m:num_layers() == L and #s.expanded_layers == 0, "no_stage1 expanded")
  local trained = {}
  for _, l in ipairs(s.trained_layers) do trained[l] = true end
  local moved = changes(m, function(l) return l end)
  for _, p in ipairs(m:params()) do
    if not (p.layer and trained[p.layer]) then assert(moved[p.name] == 0, "no_stage1: frozen " .. p.name .. " moved") end
  end
  assert(s.lr_refreshes == 2 and s.lr_policy == "decoupled", "no_stage1: refreshes " .. tostring(s.lr_refreshes))
end

-- no stage 2: ADEPT's copies (after the least important layers), one LR, never refreshed
do
  local s, m, out = baseline("no_stage2")
  local imp = read_json(out .. "/importance.json")
  local scores = {}
  for l, v in pairs(imp.scores) do scores[math.tointeger(tonumber(l))] = v end
  same_list(s.expanded_from, adept.select.least_important(scores, 2), "no_stage2 copies")
  assert(s.lr_refreshes == 0 and s.lr_policy == "one", "no_stage2 refreshed LRs")
  local moved = changes(m, orig_map(m))
  for name, d in pairs(moved) do assert(d == 0, ("no_stage2: original %s moved by %g"):format(name, d)) end
  local f = assert(io.open(out .. "/metrics.jsonl"))
  for line in f:lines() do assert(not line:find('"lr_scales"', 1, true), "no_stage2 logged LR scales") end
  f:close()
end

-- ablations write one run directory per variant: <out>/<label>-s0
local function variant(out, label) return read_json(("%s/%s-s0/summary.json"):format(out, label)) end

do -- placement: each rule's layers
  local out = tmp .. "/placement"
  run_recipe("ablations/placement.lua", out)
  local imp = read_json(out .. "/importance-s0/importance.json")
  local scores = {}
  for l, v in pairs(imp.scores) do scores[math.tointeger(tonumber(l))] = v end
  same_list(variant(out, "importance").expanded_from, adept.select.least_important(scores, 2), "placement importance")
  same_list(variant(out, "uniform").expanded_from, adept.select.uniform(L, 2), "placement uniform")
  same_list(variant(out, "random").expanded_from, adept.select.random(L, 2, 0), "placement random")
  same_list(variant(out, "top").expanded_from, {L - 2, L - 1}, "placement top")
  same_list(variant(out, "bottom").expanded_from, {0, 1}, "placement bottom")
  assert(#read_json(out .. "/results.json") == 5, "placement: results rows")
end

do -- expansion ratio: k copies for k = 1, 2, and a larger trainable share with more copies
  local out = tmp .. "/expansion_ratio"
  run_recipe("ablations/expansion_ratio.lua", out, {ks = "1,2"})
  local k1, k2 = variant(out, "k1"), variant(out, "k2")
  assert(#k1.expanded_layers == 1 and #k2.expanded_layers == 2, "expansion_ratio: copies per k")
  assert(k2.trainable_share > k1.trainable_share, "expansion_ratio: trainable share does not grow with k")
end

do -- importance metrics: five scored, each downstream run expands its own metric's least important layers
  local out = tmp .. "/importance_metrics"
  run_recipe("ablations/importance_metrics.lua", out)
  local records = read_json(out .. "/importance.json")
  for _, metric in ipairs{"mask_out", "grad_weight", "rank", "fisher", "block_influence"} do
    local rec = assert(records[metric], "importance_metrics: " .. metric .. " not scored")
    local scores = {}
    for l, v in pairs(rec.scores) do scores[math.tointeger(tonumber(l))] = v end
    local s = variant(out .. "/downstream", metric)
    assert(s.metric == metric, "downstream run of " .. metric .. " used " .. tostring(s.metric))
    same_list(s.expanded_from, adept.select.least_important(scores, 2), "importance_metrics " .. metric)
  end
end

do -- LR policies: the multipliers each policy set at the first refresh (step 1: every run is identical up to it)
  local out = tmp .. "/lr_policy"
  run_recipe("ablations/lr_policy.lua", out)
  local function first_scales(label)
    local f = assert(io.open(("%s/%s-s0/metrics.jsonl"):format(out, label)))
    for line in f:lines() do
      local r = adept.json.decode(line)
      if r.type == "lr_scales" then f:close(); return r.scales end
    end
    f:close()
  end
  assert(first_scales("one_lr") == nil, "one_lr set LR scales")
  local uniform, dec, inv = first_scales("uniform"), first_scales("decoupled_by_kind"), first_scales("inverted")
  local shuf, all = first_scales("shuffled"), first_scales("decoupled_all")
  local n, lo, hi = 0, math.huge, -math.huge
  for name, w in pairs(dec) do
    n = n + 1
    assert(uniform[name] == 1, "uniform scale of " .. name .. " is " .. tostring(uniform[name]))
    assert(math.abs(inv[name] + w - 2) < 1e-12, ("inverted %s: %g, decoupled %g"):format(name, inv[name], w))
  end
  for _, w in pairs(all) do lo, hi = math.min(lo, w), math.max(hi, w) end
  assert(n > 0 and lo == 0 and hi == 2, ("decoupled_all spans [%g, %g], expected [0, 2]"):format(lo, hi))
  local a, b = {}, {}
  for name, w in pairs(dec) do a[#a + 1] = w; b[#b + 1] = shuf[name] end
  table.sort(a); table.sort(b)
  same_list(b, a, "shuffled is a permutation of decoupled")
end

do -- official: the official code's choices, against adeptlua's defaults in the same sweep
  local out = tmp .. "/official"
  run_recipe("ablations/official.lua", out)
  local mine, off, offr = variant(out, "adeptlua"), variant(out, "official"), variant(out, "official_refresh")
  assert(mine.metric == "mask_out" and mine.normalize == "by_kind" and mine.weight_decay == 0.1, "adeptlua defaults")
  same_list(mine.betas, {0.9, 0.95}, "adeptlua betas")
  for _, s in ipairs{off, offr} do
    assert(s.metric == "mask_out_batches" and s.normalize == "all" and s.weight_decay == 0, "official choices")
    same_list(s.betas, {0.9, 0.999}, "official betas")
  end
  assert(off.refresh == 500 and off.lr_refreshes == 0, "official: a refresh every 500 steps, none in 3")
  assert(offr.lr_refreshes == 2, "official_refresh: refreshes " .. tostring(offr.lr_refreshes))
  local imp = read_json(out .. "/official-s0/importance.json")
  assert(imp.metric == "mask_out_batches", "official importance metric " .. tostring(imp.metric))
end

adept.fs.remove_tree(tmp)
print(("baselines and ablations: every recipe ran and showed its method, %.1f s"):format(adept.now() - t0))
