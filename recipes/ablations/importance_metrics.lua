-- Ablation: the five stage-1 layer-importance metrics on one general probe -- their scores (importance.json as
-- {metric -> record}, drawn by adept.report), the Spearman correlation between their layer rankings, and the
-- downstream result of ADEPT with each metric choosing the copies.
-- Usage: adeptlua recipes/ablations/importance_metrics.lua k=2 lr=3e-4 probe_batches=4 out=runs/ablations/metrics
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
local out = a.out or "runs/ablations/importance_metrics"
local METRICS = {"mask_out", "grad_weight", "rank", "fisher", "block_influence"}
local o = cpt.options("adept", {}, a)
adept.fs.mkdir_p(out)

-- the probe adept.cpt uses: the first probe_batches batches of the general corpus' training split
local tok = cpt.tokenizer_for(o.model)
local general = adept.dataset{path = o.general, tokenizer = tok, seq_len = o.seq_len, holdout = 0.1, seed = 1,
  progress = false, max_documents = o.max_documents}
local probe = general:train():take(o.probe_batches, o.batch_size)
local m = adept.load(cpt.resolve_model(o.model))

local scores, records, ok_metrics, failed = {}, {}, {}, {}
for _, metric in ipairs(METRICS) do
  local ok, s, rec = pcall(adept.importance.layers, m, probe, {metric = metric})
  if ok then
    scores[metric], records[metric] = s, rec
    ok_metrics[#ok_metrics + 1] = metric
  else
    failed[metric] = tostring(s)
    adept.log("warn", ("importance_metrics: %s failed: %s"):format(metric, tostring(s)))
  end
end
local f = assert(io.open(out .. "/importance.json", "w"))
f:write(adept.json.encode(records, {pretty = true}), "\n")
f:close()

local md = {"# Layer-importance metrics on one probe", "",
  ("Probe: %d batches of %d x %d tokens of %s."):format(o.probe_batches, o.batch_size, o.seq_len, o.general), "",
  "| Metric | Scores by layer (0..L-1) | Least important " .. o.k .. " | Seconds |", "|---|---|---|---|"}
for _, metric in ipairs(ok_metrics) do
  local s, cells = scores[metric], {}
  for l = 0, m:num_layers() - 1 do cells[#cells + 1] = ("%.4g"):format(s[l]) end
  md[#md + 1] = ("| %s | %s | %s | %.2f |"):format(metric, table.concat(cells, ", "),
    table.concat(adept.select.least_important(s, o.k), ","), records[metric].seconds)
end
for metric, err in pairs(failed) do md[#md + 1] = ("| %s | failed: %s | | |"):format(metric, err:gsub("|", "/")) end
md[#md + 1] = ""
md[#md + 1] = "Spearman correlation between layer rankings:"
md[#md + 1] = ""
md[#md + 1] = "| | " .. table.concat(ok_metrics, " | ") .. " |"
md[#md + 1] = "|---" .. string.rep("|---", #ok_metrics) .. "|"
for _, x in ipairs(ok_metrics) do
  local cells = {}
  for _, y in ipairs(ok_metrics) do
    local r = adept.importance.spearman(scores[x], scores[y])
    cells[#cells + 1] = r and ("%.2f"):format(r) or "n/a"
  end
  md[#md + 1] = ("| %s | %s |"):format(x, table.concat(cells, " | "))
end
local text = table.concat(md, "\n") .. "\n\n"
io.write(text)

-- downstream: ADEPT with each metric choosing the copies
local variants = {}
for _, metric in ipairs(ok_metrics) do variants[#variants + 1] = {label = metric, metric = metric} end
cpt.compare("adept", variants, out .. "/downstream", "ADEPT downstream by importance metric")
local df = io.open(out .. "/downstream/results.md", "r")
local downstream = df and df:read("a") or ""
if df then df:close() end
f = assert(io.open(out .. "/results.md", "w"))
f:write(text, downstream)
f:close()
