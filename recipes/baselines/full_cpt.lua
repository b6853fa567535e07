-- Baseline: full-parameter continual pretraining (every tensor trains, one LR), same token budget as ADEPT.
-- Usage: adeptlua recipes/baselines/full_cpt.lua lr=1e-3 steps=150 seed=0 out=runs/full_cpt
local cpt = require "adept.cpt"
cpt.main("full_cpt") -- placement="none", train="all", lr_policy="one"
