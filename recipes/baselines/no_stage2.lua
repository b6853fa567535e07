-- Ablation baseline: ADEPT's selective expansion (copies of the k least important layers) with one LR for
-- every copy tensor (no stage 2). Usage: adeptlua recipes/baselines/no_stage2.lua k=2 lr=1e-3
local cpt = require "adept.cpt"
cpt.main("no_stage2") -- placement="importance", train="copies", lr_policy="one"
