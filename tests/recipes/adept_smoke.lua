-- Recipe test: recipes/adept.lua end to end on stories260K in seconds (5 steps, tiny probe, prefixes of the
-- corpora); checks the run directory: importance, metrics, LR refreshes, checkpoint, HF model, summary. 77 without ../shared.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local root = assert(arg[0]:match("^(.*)/tests/recipes/[^/]*$") or (arg[0]:match("^tests/recipes/") and "."),
  "cannot locate the repository from " .. arg[0])
local out = os.tmpname()
os.remove(out)
out = out .. "-adept-smoke"
for k in pairs(adept.args) do adept.args[k] = nil end
local args = {model = model, general = shared .. "/corpora/tinystories_val.txt",
  domain = shared .. "/corpora/medquad.txt.gz", k = 2, steps = 5, refresh = 2, seq_len = 32, batch_size = 2,
  probe_batches = 1, eval_batches = 2, shift_batches = 1, max_documents = 200, out = out, seed = 0}
for k, v in pairs(args) do adept.args[k] = v end
local t0 = adept.now()
dofile(root .. "/recipes/adept.lua")

local function read(path)
  local f = assert(io.open(out .. "/" .. path, "r"), "missing " .. path)
  local s = f:read("a")
  f:close()
  return s
end

-- importance.json: mask-out scores for the 5 original layers
local imp = adept.json.decode(read("importance.json"))
assert(imp.metric == "mask_out", "importance metric " .. tostring(imp.metric))
local n = 0
for l, s in pairs(imp.scores) do n = n + 1; assert(type(s) == "number" and s == s, "score of layer " .. l) end
assert(n == 5, "expected 5 layer scores, got " .. n)

-- summary.json: the fields adept.report reads, consistent with the run
local s = adept.json.decode(read("summary.json"))
for _, f in ipairs{"general_before", "general_after", "domain_before", "domain_after", "trainable_share", "tokens",
                   "wall_time", "lr", "step_seconds", "token_shift_general"} do
  assert(type(s[f]) == "number", "summary." .. f .. " missing")
end
assert(s.method == "adept" and s.steps == 5 and s.tokens == 5 * 2 * 32, "steps/tokens " .. s.steps .. " " .. s.tokens)
assert(#s.expanded_layers == 2 and s.lr_refreshes == 2, "expanded/refreshes")
assert(s.domain_after ~= s.domain_before, "training changed nothing")
assert(s.trainable_share > 0 and s.trainable_share < 0.5, "trainable share " .. s.trainable_share)

-- metrics.jsonl: 5 train records, LR-scale records at the refreshes (steps 2 and 4, none after the last), before/after evals
local train, scales, evals = 0, {}, 0
for line in read("metrics.jsonl"):gmatch("[^\n]+") do
  local r = adept.json.decode(line)
  if r.type == "train" then train = train + 1 end
  if r.type == "lr_scales" then scales[#scales + 1] = r.step end
  if r.type == "eval" then evals = evals + 1 end
end
assert(train == 5, "train records: " .. train)
assert(#scales >= 1 and scales[1] == 2, "first LR refresh should be at step 2 (not 0)")
assert(evals == 2, "eval records: " .. evals)

-- checkpoint and the final HF model: 7 layers, copies recorded, frozen originals untouched
assert(adept.fs.exists(out .. "/checkpoints/step_00000005/trainer_state.safetensors"), "checkpoint missing")
assert(adept.fs.exists(out .. "/model/config.json"), "HF model missing")
local m = adept.load(out .. "/model")
assert(m:num_layers() == 7, "expanded model has " .. m:num_layers() .. " layers")
local copies = m:expanded_layers()
assert(#copies == 2 and copies[1] == s.expanded_layers[1] and copies[2] == s.expanded_layers[2], "copies not restored")
local base = adept.load(model .. "/stories260K.bin")
local is_copy = {}
for _, l in ipairs(copies) do is_copy[l] = true end
local orig = 0
for l = 0, 6 do
  if not is_copy[l] then
    local name = ("model.layers.%d.mlp.down_proj.weight"):format(l)
    local d = m:param(name):sub(base:param(("model.layers.%d.mlp.down_proj.weight"):format(orig))):abs():max()
    assert(d == 0, ("original layer %d moved by %g"):format(orig, d))
    orig = orig + 1
  else
    assert(m:param(("model.layers.%d.mlp.down_proj.weight"):format(l)):abs():max() > 0, "copy did not train")
  end
end
assert(adept.fs.exists(out .. "/report.md"), "report missing")
adept.fs.remove_tree(out)
print(("adept smoke: run directory complete, %.1f s"):format(adept.now() - t0))
