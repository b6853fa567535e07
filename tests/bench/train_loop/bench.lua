-- adeptlua side of tests/bench/train_loop: adept.train on random tokens; prints one JSON object.
local adept = require "adept"
local a = adept.args
local cfg = {vocab_size = 1024, hidden_size = 192, intermediate_size = 512, num_hidden_layers = 8,
             num_attention_heads = 6, num_key_value_heads = 6}
local B, T, steps = 4, 128, a.steps or 6
local m = adept.model(cfg, {seed = 1})
if a.mode == "top25" then
  m:freeze("all")
  m:unfreeze("^model%.layers%.[67]%.")
end
local opt = adept.adamw(m, {lr = 1e-4, weight_decay = 0.1})
local function batch(i)
  local rows = {}
  for r = 1, B do
    local row = {}
    for t = 1, T + 1 do row[t] = (i * 7919 + r * 104729 + t * 31337) % cfg.vocab_size end
    rows[r] = row
  end
  return rows
end
local data = {}
for i = 1, 8 do data[i] = batch(i) end
adept.train{model = m, optimizer = opt, data = data, steps = 2, progress = false}   -- warm-up: plans, state
local res = adept.train{model = m, optimizer = opt, data = data, steps = steps, progress = false}
local rss = 0
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s+(%d+)")
  if kb then rss = tonumber(kb) * 1024 end
end
print(adept.json.encode{tokens_per_s = res.tokens_seen / res.elapsed, peak_rss = rss, config = cfg, batch = B,
                        seq = T, trainable = m:trainable_params(), memory = adept.memory(m, opt)})
