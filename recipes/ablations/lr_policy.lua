-- Ablation: stage-2 LR multipliers on the same expanded copies -- decoupled (normalised over all units, by kind
-- (norms apart from matrices), by layer), one LR, uniform scales, inverted (critical units learn fastest) and
-- shuffled (the decoupled multipliers dealt at random). Usage: adeptlua recipes/ablations/lr_policy.lua lr=3e-4
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
cpt.compare("adept", {
  {label = "decoupled_all", lr_policy = "decoupled", normalize = "all"},
  {label = "decoupled_by_kind", lr_policy = "decoupled", normalize = "by_kind"},
  {label = "decoupled_by_layer", lr_policy = "decoupled", normalize = "by_layer"},
  {label = "one_lr", lr_policy = "one"},
  {label = "uniform", lr_policy = "uniform"},
  {label = "inverted", lr_policy = "inverted", normalize = a.normalize or "by_kind"},
  {label = "shuffled", lr_policy = "shuffled", normalize = a.normalize or "by_kind"},
}, a.out or "runs/ablations/lr_policy", "LR-policy ablation")
