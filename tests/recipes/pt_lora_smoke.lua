-- Recipe test: recipes/baselines/pt_lora.lua on stories260K at a tiny budget. Checks what makes it PT-LoRA: only
-- adapters train (the summary's trainable share is the adapters'), the saved adapter directory loads back onto
-- the untouched base and reproduces the trained model's logits bitwise, the base weights under the adapters are
-- bitwise the base's (training moved only the adapters), and the merged model/ agrees with base + adapter.
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
local out = os.tmpname()
os.remove(out)

for k in pairs(adept.args) do adept.args[k] = nil end
local args = {model = model, general = shared .. "/corpora/tinystories_val.txt",
  domain = shared .. "/corpora/medquad.txt.gz", steps = 4, seq_len = 32, batch_size = 2, lr = 1e-2,
  probe_batches = 2, eval_batches = 2, shift_batches = 1, max_documents = 200, out = out, seed = 0, report = false,
  lora_rank = 4, lora_alpha = 8}
for k, v in pairs(args) do adept.args[k] = v end
dofile(root .. "/recipes/baselines/pt_lora.lua")

local f = assert(io.open(out .. "/summary.json"))
local s = adept.json.decode(f:read("a"))
f:close()
assert(s.method == "pt_lora" and s.steps == 4, "summary: method/steps")
assert(s.lora and s.lora.rank == 4 and s.lora.alpha == 8, "summary: lora rank/alpha")
assert(s.trainable_share > 0 and s.trainable_share < 0.5, "only adapters train, share " .. s.trainable_share)

local function flat(t, out)
  out = out or {}
  if type(t) == "table" then for _, v in ipairs(t) do flat(v, out) end else out[#out + 1] = t end
  return out
end
local function same(a, b) a, b = flat(a), flat(b); if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- base + adapter: every base row bitwise the base's; the adapters moved (B no longer zero)
local base = adept.load(model .. "/stories260K.bin")
local tuned = adept.load(model .. "/stories260K.bin")
adept.lora.load_adapter(tuned, out .. "/adapter")
local moved = false
for _, p in ipairs(tuned:params()) do
  if p.kind == "lora_B" then
    for _, v in ipairs(flat(tuned:param(p.name):table())) do if v ~= 0 then moved = true end end
  elseif p.kind ~= "lora_A" then
    assert(same(tuned:param(p.name):table(), base:param(p.name):table()), p.name .. " changed")
  end
end
assert(moved, "training left every adapter B at zero")

-- the merged model agrees with base + adapter within float32 rounding of the fold
local ids = {{1, 50, 60, 70, 80, 90, 100, 110}}
local a, b = flat(tuned:logits(ids):table()), flat(adept.load(out .. "/model"):logits(ids):table())
local worst, scale = 0, 0
for i = 1, #a do worst, scale = math.max(worst, math.abs(a[i] - b[i])), math.max(scale, math.abs(a[i])) end
assert(worst <= 1e-4 * math.max(scale, 1), ("merged model differs from base + adapter by %g"):format(worst))
adept.fs.remove_tree(out)
print(("pt_lora_smoke ok: trainable share %.4f, merged vs adapter max |diff| %.2e"):format(s.trainable_share, worst))
