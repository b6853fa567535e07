-- tests/bench/scale: ADEPT's stage 1 alone on a checkpoint of a real model's shape: load, then mask-out importance
-- over a probe of batch x seq random tokens, against adept.plan of the same run (nothing trains: weights plus the
-- mask-out pass's activations). Prints one RESULT line.
-- Usage: adeptlua stage1.lua model=DIR batch=4 seq=1024
local a = adept.args
local dir = assert(a.model, "model= is required")
local B, T = a.batch or 4, a.seq or 1024
local function rss_peak()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end
local plan = adept.plan(dir, {batch_size = B, seq_len = T, trainable = "none"})
local t0 = adept.now()
local m = adept.load(dir)
local load_s = adept.now() - t0
local V = m.config.vocab_size
local probe, seed = {}, 7
for b = 1, B do
  local row = {}
  for t = 1, T + 1 do seed = (seed * 1103515245 + 12345) % 2147483648; row[t] = seed % V end
  probe[b] = row
end
t0 = adept.now()
adept.importance.layers(m, {probe}, {metric = "mask_out"})
local maskout_s = adept.now() - t0
local peak = rss_peak()
print(("RESULT layers=%d probe=%dx%d load_s=%.1f maskout_s=%.1f maskout_s_per_token=%.4f plan_weights_gib=%.2f "
  .. "plan_activations_gib=%.2f plan_total_gib=%.2f peak_rss_gib=%.2f rss_over_plan=%.3f"):format(m:num_layers(), B, T,
  load_s, maskout_s, maskout_s / (B * T), plan.weights / 2^30, plan.activations / 2^30, plan.total / 2^30,
  peak / 2^30, peak / plan.total))
