-- The real demonstration: continual pretraining of stories260K (general: TinyStories) on MedQuAD, every
-- method at the same token budget, base-LR sweep x seeds; then trade-off frontiers (docs/results.md).
-- Usage: adeptlua --threads 1 recipes/demo/medquad.lua methods=adept,full_cpt lrs=1e-4,3e-4 seeds=0,1,2 shard=0/2
--        [domain=.../math_docs.txt.gz root=runs/math_docs] (another target domain, same protocol)
--        then: adeptlua recipes/demo/analyze.lua   (tables, frontiers, chart, report)
-- Finished runs (summary.json present) are skipped, so the sweep resumes where it stopped.
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args

local root = a.root or "runs/medquad"
local function list(s, conv)
  local out = {}
  for item in tostring(s):gmatch("[^,]+") do out[#out + 1] = conv and conv(item) or item end
  return out
end
local methods = list(a.methods or "adept,full_cpt,llama_pro,freeze_top,no_stage2")
local lrs = list(a.lrs or "3e-5,1e-4,3e-4,1e-3,3e-3", tonumber)
local seeds = list(a.seeds or "0,1,2", math.tointeger)
-- the shared budget: steps x batch_size x seq_len target tokens per run
local common = {steps = a.steps or 100, batch_size = a.batch_size or 8, seq_len = a.seq_len or 64,
  refresh = a.refresh or 25, k = a.k or 2, report = false}
-- another domain (or general corpus) for the same protocol: domain=$ADEPT_SHARED/corpora/math_docs.txt.gz
for _, key in ipairs{"domain", "general", "model"} do common[key] = a[key] end

local function run_dir(method, lr, seed) return ("%s/%s/lr%g-s%d"):format(root, method, lr, seed) end

-- shard=i/n (0-based) runs every n-th job, so n processes (one thread each) split the sweep evenly
local shard_i, shard_n = tostring(a.shard or "0/1"):match("^(%d+)/(%d+)$")
shard_i, shard_n = math.tointeger(tonumber(shard_i)), math.tointeger(tonumber(shard_n))
local job = -1
for _, seed in ipairs(seeds) do
    for _, lr in ipairs(lrs) do
      for _, method in ipairs(methods) do
        job = job + 1
        if job % shard_n ~= shard_i then goto continue end
        local spec = {}
        for k, v in pairs(common) do spec[k] = v end
        spec.lr, spec.seed, spec.out = lr, seed, run_dir(method, lr, seed)
        local o = cpt.options(method, spec, {})
        local t0 = adept.now()
        local s = cpt.run(o)
        print(("%-10s lr=%-6g seed=%d general %.4f -> %.4f domain %.4f -> %.4f %.3f s/step (%.1f s)"):format(
          method, lr, seed, s.general_before, s.general_after, s.domain_before, s.domain_after, s.step_seconds,
          adept.now() - t0))
        io.stdout:flush()
        ::continue::
      end
    end
  end
