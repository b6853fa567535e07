-- tests/bench/scale: one process on a checkpoint of a real model's shape: load time, adept.plan against the
-- peak RSS, mask-out importance seconds per probe token, and ADEPT step time with `copies` identity copies
-- trained (the uniform placement adept.plan assumes). Prints one RESULT line.
-- Usage: adeptlua step.lua model=DIR copies=4 seq=2048 probe_tokens=256 recompute=true steps=1
local a = adept.args
local dir = assert(a.model, "model= is required")
local copies, T, steps = a.copies or 4, a.seq or 2048, a.steps or 1
local recompute = a.recompute ~= false
local rss_peak = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/rss_peak.lua")
local plan = adept.plan(dir, {batch_size = 1, seq_len = T, copies = copies, trainable = "copies",
  recompute = recompute})
local t0 = adept.now()
local m = adept.load(dir, {recompute = recompute})
local load_s = adept.now() - t0
local V = m.config.vocab_size
local function batch(n, seed)
  local row = {}
  for t = 1, n + 1 do seed = (seed * 1103515245 + 12345) % 2147483648; row[t] = seed % V end
  return {row}
end
-- stage 1 on a short probe: mask-out over the original layers
local pt = a.probe_tokens or 256
t0 = adept.now()
adept.importance.layers(m, {batch(pt, 7)}, {metric = "mask_out"})
local maskout_s = adept.now() - t0
-- expansion and training of the copies
local L = m:num_layers()
local made = m:expand(adept.select.uniform(L, copies))
local names = {}
for _, p in ipairs(m:params()) do
  for _, c in ipairs(made) do if p.layer == c then names[#names + 1] = p.name end end
end
m:set_trainable(names)
local opt = adept.adamw(m, {lr = 1e-5})
local best = math.huge
for s = 1, steps do
  t0 = adept.now()
  adept.train_step(m, opt, {batch(T, 100 + s)})
  best = math.min(best, adept.now() - t0)
end
local mem = adept.memory(m, opt)
local peak = rss_peak()
print(("RESULT layers=%d+%d seq=%d recompute=%s load_s=%.1f maskout_s_per_token=%.4f step_s=%.1f plan_total_gib=%.2f "
  .. "engine_total_gib=%.2f peak_rss_gib=%.2f rss_over_plan=%.3f"):format(L, copies, T, tostring(recompute), load_s,
  maskout_s / pt, best, plan.total / 2^30, mem.total / 2^30, peak / 2^30, peak / plan.total))
