-- Baseline: full CPT with replay -- a fraction r of every batch's tokens (token-level, deterministic, the
-- cumulative share kept at round(r * tokens)) comes from the general corpus. Total tokens match the others.
-- Usage: adeptlua recipes/baselines/replay.lua replay=0.25 lr=1e-3
local cpt = require "adept.cpt"
cpt.main("replay") -- placement="none", train="all", lr_policy="one", replay=0.25
