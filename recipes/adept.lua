-- ADEPT (arXiv 2510.10071): stage 1 mask-out layer importance on a general probe, identity copies of the k
-- least important layers (only the copies train), stage 2 per-unit LRs 2(Imax-I)/(Imax-Imin) refreshed every
-- `refresh` steps. Usage: adeptlua recipes/adept.lua k=2 metric=mask_out steps=150 lr=1e-3 refresh=50
--   seq_len=64 batch_size=8 seed=0 normalize=by_kind out=runs/adept  (model=, general=, domain= paths)
-- Writes <out>/: importance.json, metrics.jsonl, checkpoints/, model/ (HF directory), summary.json, report.md.
local cpt = require "adept.cpt"
cpt.main("adept")
