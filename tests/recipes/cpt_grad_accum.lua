-- Recipe test: adept.cpt's grad_accum (issue 11 point 7): batch 4 with 2 micro-batches per step trains on the same
-- sequences as batch 8 in one, evaluates on the same windows, and ends at the same losses within fp32 rounding:
-- the gradients differ only by how 8 rows x 64 positions are summed (4 + 4 accumulated against 8 at once), about
-- sqrt(512) x 2^-24 = 1.3e-6 relative per element, which 3 Adam steps carry into the weights; 1e-5 relative on a
-- loss near 4 leaves room. Skips (77) without ../shared.
local cpt = require "adept.cpt"
if not adept.fs.exists(cpt.defaults.model) then
  print("skipped: " .. cpt.defaults.model .. " is absent")
  os.exit(77)
end
local tmp = os.tmpname()
os.remove(tmp)
local function run(bs, ga)
  local o = cpt.options("full_cpt", {}, {steps = 3, probe_batches = 1, eval_batches = 1, shift_batches = 1,
    report = false, progress = false, max_documents = 200, warmup = 1, out = ("%s-%d-%d"):format(tmp, bs, ga),
    batch_size = bs, grad_accum = ga})
  return cpt.run(o)
end
local one, acc = run(8, 1), run(4, 2)
assert(one.tokens == acc.tokens, ("tokens %d and %d"):format(one.tokens, acc.tokens))
for _, k in ipairs{"general_before", "domain_before", "general_after", "domain_after"} do
  local rel = math.abs(one[k] - acc[k]) / one[k]
  print(("%s: batch 8 %.9f, batch 4 x 2 %.9f, relative %.1e"):format(k, one[k], acc[k], rel))
  assert(rel <= 1e-5, k)
end
assert(acc.grad_accum == 2 and one.grad_accum == 1, "summary.json records grad_accum")
for _, d in ipairs{tmp .. "-8-1", tmp .. "-4-2"} do adept.fs.remove_tree(d) end
