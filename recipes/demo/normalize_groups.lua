-- Why adept.lr.decoupled normalises by kind by default: the official code's min-max over ALL trainable units
-- against min-max within norms and within matrices, on the same unit scores. ADEPT's copies are trained for
-- `steps` steps with one LR (stage 2 off, so the scores are those a first refresh would see), then
-- adept.importance.units scores every unit of the copies on the general probe and both normalisations turn the
-- scores into LR multipliers. Writes <out>/normalize_groups.md (a table per unit) and .json.
-- Usage: adeptlua recipes/demo/normalize_groups.lua [steps=50] [k=2] [lr=1e-3] [out=runs/normalize_groups]
local adept = require "adept"
local cpt = require "adept.cpt"
local a = adept.args
local out = a.out or "runs/normalize_groups"
local steps = a.steps or 50
local o = cpt.options("no_stage2", {}, {k = a.k, lr = a.lr, model = a.model, general = a.general, domain = a.domain,
  seed = a.seed, max_documents = a.max_documents})
o.out, o.steps, o.report, o.force = out .. "/run", steps, false, true
local s = cpt.run(o) -- importance-placed copies, only the copies train, one LR

local m = adept.load(out .. "/run/model")
m:freeze("all")
for _, l in ipairs(m:expanded_layers()) do m:unfreeze("^model%.layers%." .. l .. "%.") end
local tok = cpt.tokenizer_for(cpt.resolve_model(o.model))
local general = adept.dataset{path = o.general, tokenizer = tok, seq_len = o.seq_len, holdout = 0.1, seed = 1,
  progress = false, max_documents = o.max_documents}
local probe = general:train():take(o.probe_batches, o.batch_size)
local units = adept.importance.units(m, probe)
local w_all = adept.lr.decoupled(units, {normalize = "all", model = m})
local w_kind = adept.lr.decoupled(units, {normalize = "by_kind", model = m})

local kind_of = {}
for _, p in ipairs(m:params()) do kind_of[p.name] = p.norm and "norm" or "matrix" end
local names = {}
for n in pairs(units) do names[#names + 1] = n end
table.sort(names, function(x, y) return units[x] > units[y] end)
local md = {("# LR multipliers: min-max over all units vs by kind (stories260K, %d copies after %d steps)"):format(
  #m:expanded_layers(), s.steps), "",
  "| Unit | Kind | Importance | w (all) | w (by_kind) |", "|---|---|---:|---:|---:|"}
local count = {norm = {n = 0, all = 0, kind = 0}, matrix = {n = 0, all = 0, kind = 0}}
for _, n in ipairs(names) do
  local k = kind_of[n]
  md[#md + 1] = ("| %s | %s | %.4g | %.3f | %.3f |"):format(n, k, units[n], w_all[n], w_kind[n])
  count[k].n, count[k].all, count[k].kind = count[k].n + 1, count[k].all + w_all[n], count[k].kind + w_kind[n]
end
md[#md + 1] = ""
for _, k in ipairs{"norm", "matrix"} do
  local c = count[k]
  md[#md + 1] = ("Mean multiplier of the %d %s units: %.3f with min-max over all units, %.3f by kind."):format(
    c.n, k, c.all / math.max(1, c.n), c.kind / math.max(1, c.n))
end
local text = table.concat(md, "\n") .. "\n"
io.write(text)
adept.fs.mkdir_p(out)
local f = assert(io.open(out .. "/normalize_groups.md", "w")); f:write(text); f:close()
f = assert(io.open(out .. "/normalize_groups.json", "w"))
f:write(adept.json.encode({units = units, all = w_all, by_kind = w_kind, steps = s.steps}, {pretty = true}), "\n")
f:close()
