-- Ablation: where the k identity copies go -- importance-guided (ADEPT) vs uniform (LLaMA-Pro) vs random vs top
-- vs bottom; only the copies train, with ADEPT's decoupled LRs (lr_policy=one isolates placement further).
-- Usage: adeptlua recipes/ablations/placement.lua k=2 lr=3e-4 seeds=0,1 [lr_policy=one]
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
cpt.compare("adept", {
  {label = "importance", placement = "importance"},
  {label = "uniform", placement = "uniform"},
  {label = "random", placement = "random"},
  {label = "top", placement = "top"},
  {label = "bottom", placement = "bottom"},
}, a.out or "runs/ablations/placement", "Placement ablation")
