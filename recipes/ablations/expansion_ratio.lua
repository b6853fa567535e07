-- Ablation: how many layers to expand (k) with ADEPT's importance-guided placement and decoupled LRs.
-- Usage: adeptlua recipes/ablations/expansion_ratio.lua ks=1,2,3 lr=3e-4 steps=100 seeds=0 out=runs/ablations/k
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
local variants = {}
for k in tostring(a.ks or "1,2,3"):gmatch("[^,]+") do
  variants[#variants + 1] = {label = "k" .. k, k = math.tointeger(tonumber(k))}
end
cpt.compare("adept", variants, a.out or "runs/ablations/expansion_ratio", "Expansion ratio (k) ablation", nil, {"ks"})
