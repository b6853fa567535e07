-- Baseline: TaSL (Feng et al., ACL 2024) adapted to continual pretraining -- full CPT (every tensor trains, one
-- LR), then skill consolidation: each unit (a matrix row by default) becomes an importance-weighted average of its
-- weights before and after training, units important on the general probe keeping more of the old weights
-- (adept.tasl, docs/adept.md "TaSL"). Usage: adeptlua recipes/baselines/tasl.lua lr=1e-3 tasl_granularity=row
local cpt = require "adept.cpt"
cpt.main("tasl") -- placement="none", train="all", lr_policy="one", consolidate="tasl"
