-- Ablation baseline: no expansion; the k least important original layers (stage-1 importance) train in place
-- with ADEPT's decoupled per-unit LRs. Usage: adeptlua recipes/baselines/no_stage1.lua k=2 lr=1e-3
local cpt = require "adept.cpt"
cpt.main("no_stage1") -- placement="none", train="least_important", lr_policy="decoupled"
