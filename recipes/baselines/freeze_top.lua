-- Baseline: no expansion; train the top k original layers in place (everything else frozen), one LR.
-- Usage: adeptlua recipes/baselines/freeze_top.lua k=2 lr=1e-3
local cpt = require "adept.cpt"
cpt.main("freeze_top") -- placement="none", train="top", lr_policy="one"
