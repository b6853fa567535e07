-- Recipe test: recipes/baselines/tasl.lua on stories260K at a tiny budget, next to recipes/baselines/full_cpt.lua with
-- the same options (TaSL trains exactly as full CPT does, then consolidates). Checks what makes it TaSL: every row of
-- every tensor ends at θ_base + (1 - γ)(θ_full - θ_base) with the γ recorded in tasl.json, so units that keep more of
-- the old weights moved less; γ rises with the general-probe importance; the summary and tasl.json are complete.
-- 77 without ../shared.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local root = assert(arg[0]:match("^(.*)/tests/recipes/[^/]*$") or (arg[0]:match("^tests/recipes/") and "."),
  "cannot locate the repository from " .. arg[0])
local base_out = os.tmpname()
os.remove(base_out)
local t0 = adept.now()

local function run(recipe, out)
  for k in pairs(adept.args) do adept.args[k] = nil end
  local args = {model = model, general = shared .. "/corpora/tinystories_val.txt",
    domain = shared .. "/corpora/medquad.txt.gz", steps = 4, seq_len = 32, batch_size = 2, lr = 3e-3,
    probe_batches = 2, eval_batches = 2, shift_batches = 1, max_documents = 200, out = out, seed = 0, report = false}
  for k, v in pairs(args) do adept.args[k] = v end
  dofile(root .. "/recipes/baselines/" .. recipe .. ".lua")
end

local tasl_out, full_out = base_out .. "-tasl", base_out .. "-full"
run("tasl", tasl_out)
run("full_cpt", full_out)

local function read_json(path)
  local f = assert(io.open(path, "r"), "missing " .. path)
  local s = f:read("a")
  f:close()
  return adept.json.decode(s)
end

local s = read_json(tasl_out .. "/summary.json")
assert(s.method == "tasl" and s.consolidate == "tasl" and s.steps == 4, "summary: method/consolidate/steps")
assert(type(s.tasl_seconds) == "number" and type(s.tasl_mean_kept) == "number", "summary: TaSL fields")
assert(s.trainable_share == 1, "TaSL trains every tensor, got share " .. s.trainable_share)
local rec = read_json(tasl_out .. "/tasl.json")
assert(rec.granularity == "row" and rec.rule == "ratio" and rec.normalize == "minmax", "tasl.json: defaults recorded")
assert(rec.units > 1000 and rec.mean_kept > 0 and rec.mean_kept < 1, "tasl.json: units/mean_kept")

local base = adept.load(model .. "/stories260K.bin")
local tasl = adept.load(tasl_out .. "/model")
local full = adept.load(full_out .. "/model")

-- Per row: the TaSL run's displacement from the base is (1 - γ) times full CPT's (the same training, bitwise).
local pairs_checked, ratios = 0, {}
local gammas, olds = {}, {}
for _, name in ipairs(base:param_names()) do
  local t = assert(rec.tensors[name], "tasl.json has no entry for " .. name)
  local kept = type(t.kept) == "table" and t.kept or {t.kept}
  local b, x, f = base:param(name):table(), tasl:param(name):table(), full:param(name):table()
  if type(b[1]) ~= "table" then b, x, f = {b}, {x}, {f} end -- a vector: one row of per-element units below
  for r = 1, #b do
    for c = 1, #b[r] do
      local unit = #b == 1 and c or r
      local g = kept[unit]
      local want = b[r][c] + (1 - g) * (f[r][c] - b[r][c])
      -- the difference, γ, the product and the sum each round once in f32, plus f32 storage of the result
      local tol = 5 * 2 ^ -24 * (math.abs(b[r][c]) + math.abs(f[r][c]))
      assert(math.abs(x[r][c] - want) <= tol, ("%s [%d, %d]: %.9g, want %.9g (γ %g)"):format(name, r, c, x[r][c], want, g))
      pairs_checked = pairs_checked + 1
    end
  end
  -- row displacement ratio |θ_tasl - θ_base| / |θ_full - θ_base| for the matrices' rows that moved in training
  if #b > 1 then
    for r = 1, #b do
      local dt, df = 0, 0
      for c = 1, #b[r] do dt, df = dt + (x[r][c] - b[r][c]) ^ 2, df + (f[r][c] - b[r][c]) ^ 2 end
      if df > 0 then
        ratios[#ratios + 1] = {gamma = kept[r], moved = math.sqrt(dt / df)}
      end
    end
  end
  local old = type(t.old) == "table" and t.old or {t.old}
  for i = 1, #kept do gammas[#gammas + 1], olds[#olds + 1] = kept[i], old[i] end
end
local numel = 0
for _, name in ipairs(base:param_names()) do numel = numel + base:param(name):numel() end
assert(pairs_checked == numel, ("checked %d of %d weights"):format(pairs_checked, numel))

-- units keeping more of the old weights moved less: the quarter of rows with the highest γ moved a smaller share of
-- their training displacement than the quarter with the lowest
table.sort(ratios, function(p, q) return p.gamma < q.gamma end)
local quarter = #ratios // 4
local low, high = 0, 0
for i = 1, quarter do low, high = low + ratios[i].moved, high + ratios[#ratios + 1 - i].moved end
assert(#ratios > 1000 and high < low, ("high-γ rows moved %g, low-γ rows %g"):format(high / quarter, low / quarter))
-- and γ follows the general-probe importance
local rho = adept.importance.spearman(olds, gammas)
assert(rho and rho > 0, "Spearman(general importance, share kept) = " .. tostring(rho))

adept.fs.remove_tree(tasl_out)
adept.fs.remove_tree(full_out)
print(("tasl smoke: %d weights at γ θ_base + (1-γ) θ_full, high-γ rows moved %.3f of training vs %.3f, rho %.2f, %.1f s")
  :format(pairs_checked, high / quarter, low / quarter, rho, adept.now() - t0))
