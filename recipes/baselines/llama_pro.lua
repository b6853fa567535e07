-- Baseline: LLaMA-Pro block expansion -- identity copies at uniform stride (one after every n/k layers, the
-- last at the top), only the copies train, one LR. Usage: adeptlua recipes/baselines/llama_pro.lua k=2 lr=1e-3
local cpt = require "adept.cpt"
cpt.main("llama_pro") -- placement="uniform", train="copies", lr_policy="one"
