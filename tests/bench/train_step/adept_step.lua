-- adeptlua side of the train_step benchmark: forward+backward+AdamW over random token batches of a LLaMA config.
-- usage: adeptlua adept_step.lua config=a|b steps=3 threads=2
local adept = require "adept"
local a = adept.args or {}
local config, steps, threads = a.config or "a", a.steps or 3, a.threads or 2
adept.threads(threads)
local B, T, L = 8, 256, 8
local m = adept.model({vocab_size = 8192, hidden_size = 512, intermediate_size = 1408, num_hidden_layers = L,
  num_attention_heads = 8, num_key_value_heads = 8, rms_norm_eps = 1e-5, max_position_embeddings = 2048},
  {seed = 1, init_std = 0.02})
if config == "b" then
  m:freeze("all")
  m:unfreeze("^model%.layers%.[67]%.")
end
-- deterministic pseudo-random tokens (an LCG), B rows of T+1
local seed, batch = 12345, {}
for r = 1, B do
  batch[r] = {}
  for t = 1, T + 1 do seed = (seed * 1103515245 + 12345) % 2147483648; batch[r][t] = seed % 8192 end
end
local opt = adept.adamw(m, {lr = 1e-4, betas = {0.9, 0.95}, weight_decay = 0.1})
local loss = m:loss_and_grad(batch) -- warm-up: plans buffers, faults pages in, allocates the moments
opt:step()
-- the best step time: on a shared machine the minimum is the least disturbed measurement (same rule for both)
local dt = math.huge
for _ = 1, steps do
  local t0 = adept.now()
  m:zero_grad(); loss = m:loss_and_grad(batch); opt:step()
  dt = math.min(dt, adept.now() - t0)
end
local rss = 0
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s+(%d+)")
  if kb then rss = tonumber(kb) / 1024 end
end
local n = 0
for _, name in ipairs(m:param_names()) do
  local s = m:param(name):shape(); n = n + s[1] * (s[2] or 1)
end
print(string.format("RESULT engine=adeptlua config=%s tokens_per_s=%.1f step_s=%.3f peak_rss_mib=%.0f loss=%.4f params=%d",
  config, B * T / dt, dt, rss, loss, n))
