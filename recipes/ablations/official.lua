-- Ablation: adeptlua's ADEPT defaults against the official code's choices (docs/adept.md, "The paper, the
-- official code and adeptlua"), in one sweep on the same data, budget and seeds:
--   adeptlua          token-weighted mask-out, LR scales normalised by kind, refresh every `refresh` steps,
--                     AdamW betas 0.9,0.95 and weight decay 0.1
--   official          the official code's choices: mask-out as the mean of per-batch mean losses, min-max over
--                     all trainable units, a refresh every 500 steps (none at all under 500 steps, as there),
--                     HF Trainer's AdamW betas 0.9,0.999 and LLaMA-Factory's weight decay 0
--   official_refresh  the same, refreshed as often as the adeptlua run, so the other choices are compared with
--                     stage 2 active at small budgets
-- The official code's defects (2 optimizer groups, probe gradients leaking into the next step, padding counted
-- in the probe loss) are not reproduced: they are bugs, not choices (../shared/docs/adept-method.md §3.5).
-- Usage: adeptlua recipes/ablations/official.lua lr=3e-4 steps=150 seeds=0,1 [out=runs/ablations/official]
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
local official = {metric = "mask_out_batches", normalize = "all", betas = {0.9, 0.999}, weight_decay = 0}
local function with(t, extra)
  local v = {}
  for k, x in pairs(t) do v[k] = x end
  for k, x in pairs(extra) do v[k] = x end
  return v
end
cpt.compare("adept", {
  {label = "adeptlua"},
  with(official, {label = "official", refresh = 500}),
  with(official, {label = "official_refresh"}),
}, a.out or "runs/ablations/official", "adeptlua defaults vs the official code's choices")
