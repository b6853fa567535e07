-- One side of tests/bench/dist/run: training steps of train_step's 34M config (vocab 8192, hidden 512, 8 layers,
-- 8 heads, FFN 1408, seq 256) through adept.train_step, global batch 8 split over the processes, mode full (all
-- trainable) or adept (2 identity copies after layers 3 and 7 trained, the rest frozen: the top-quarter copies
-- of ADEPT). Rank 0 prints the best step time, tokens/s, the all-reduce share and bytes per step.
local a = adept.args
local mode, steps = a.mode or "full", math.tointeger(a.steps or 4)
local bucket_mb = a.bucket_mb or 25 -- 0: one all-reduce after backward; else buckets overlapped with backward
local world, rank = adept.dist.world_size(), adept.dist.rank()
local B, T = 8 // world, 256
local m = adept.model({vocab_size = 8192, hidden_size = 512, intermediate_size = 1408, num_hidden_layers = 8,
  num_attention_heads = 8, num_key_value_heads = 8, max_position_embeddings = 2048}, {seed = 1, init_std = 0.02})
if mode == "adept" then
  local copies = m:expand({3, 7})
  local names = {}
  for _, p in ipairs(m:params()) do
    for _, c in ipairs(copies) do if p.layer == c then names[#names + 1] = p.name end end
  end
  m:set_trainable(names)
end
local function batch(s) -- this rank's rows of global batch s (LCG tokens)
  local inputs, targets, seed = {}, {}, 12345 + s * 7919
  for r = 1, 8 do
    local x = {}
    for t = 1, T + 1 do seed = (seed * 1103515245 + 12345) % 2147483648; x[t] = seed % 8192 end
    if (r - 1) // B == rank then inputs[#inputs + 1] = {table.unpack(x, 1, T)}; targets[#targets + 1] = {table.unpack(x, 2, T + 1)} end
  end
  return {inputs = inputs, targets = targets}
end
local opt = adept.adamw(m, {lr = 1e-4})
adept.train_step(m, opt, {batch(0)}) -- warm-up: plans buffers, allocates the moments
local best, comm, wait, calls, bytes, loss = math.huge, 0, 0, 0, 0, 0
for s = 1, steps do
  adept.dist.barrier()
  local t0 = adept.now()
  local r = adept.train_step(m, opt, {batch(s)}, {bucket_mb = bucket_mb})
  local dt = adept.now() - t0
  if dt < best then best, comm, wait, calls, bytes = dt, r.comm_seconds, r.comm_wait_seconds, r.comm_calls, r.comm_bytes end
  loss = r.loss
end
-- the slowest rank's time is the step's
best = adept.dist.sum({best})[1] / world
if adept.dist.is_main() then
  print(("RESULT processes=%d threads=%d mode=%s bucket_mb=%g step_s=%.3f tokens_per_s=%.0f allreduce_share=%.3f exposed_share=%.3f calls=%d allreduce_mib=%.2f trainable_mib=%.2f loss=%.4f"):format(
    world, adept.threads(), mode, bucket_mb, best, 8 * T / best, comm / best, wait / best, calls, bytes / 2^20,
    adept.memory(m).trainable_params * 4 / 2^20, loss))
end
