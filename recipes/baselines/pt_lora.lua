-- Baseline: PT-LoRA -- continual pretraining through low-rank adapters on every projection (q, k, v, o, gate, up,
-- down) of every layer, the base weights frozen, one LR (m:add_lora, docs/lora.md). The run saves the merged
-- model in model/ and the PEFT adapter in adapter/.
-- Usage: adeptlua recipes/baselines/pt_lora.lua lr=1e-3 lora_rank=8 lora_alpha=16
local cpt = require "adept.cpt"
cpt.main("pt_lora") -- placement="none", train="lora", lr_policy="one"
