-- Recipe-level check of ADEPT stages 1 and 2 on the real stories260K model with a small TinyStories probe: the
-- five layer metrics run and give finite scores, skipping a trained layer raises the loss, the least important
-- layer is expanded with bitwise-unchanged logits, copy units score exactly 0 at step 0 (so decoupled scales are
-- all 1) and non-zero after one step. Exits 77 (skipped) when ../shared is absent.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model_path = shared .. "/models/stories260K/stories260K.bin"
local f = io.open(model_path, "rb")
if not f then
  print("skip: " .. model_path .. " not found (set ADEPT_SHARED)")
  os.exit(77)
end
f:close()
local tok = adept.tokenizer(shared .. "/models/stories260K/tok512.bin")
local m = adept.load(model_path)
local ds = adept.dataset{path = shared .. "/corpora/tinystories_val.txt", tokenizer = tok, seq_len = 64, seed = 1,
                         holdout = 0.1}
local probe = ds:train():take(2)
local L = m:num_layers()
local all = {}
for _, metric in ipairs({"mask_out", "grad_weight", "rank", "fisher", "block_influence"}) do
  local scores, rec = adept.importance.layers(m, probe, {metric = metric})
  for l = 0, L - 1 do
    assert(type(scores[l]) == "number" and scores[l] == scores[l] and math.abs(scores[l]) < math.huge,
      metric .. ": score of layer " .. l .. " is not finite")
  end
  all[metric] = scores
  print(("%-16s %s"):format(metric, table.concat(rec.ranking_least_important_first, " ")))
end
local mean = 0
for l = 0, L - 1 do mean = mean + all.mask_out[l] / L end
assert(mean > 0, "skipping a trained layer should raise the probe loss on average, got " .. mean)
for l = 0, L - 1 do assert(all.block_influence[l] > 0 and all.grad_weight[l] > 0 and all.fisher[l] > 0) end

local ids = probe[1].inputs:table()[1]
local before = m:logits(ids):table()
local copies = m:expand(adept.select.least_important(all.mask_out, 1), {init = "identity"})
local after = m:logits(ids):table()
for t = 1, #before do
  for v = 1, #before[t] do assert(before[t][v] == after[t][v], "logits changed by the expansion") end
end
m:freeze("all")
m:unfreeze("^model%.layers%." .. copies[1] .. "%.")
local units = adept.importance.units(m, probe)
for name, s in pairs(units) do assert(s == 0, name .. " scores " .. s .. " at step 0 (zero-initialised copy)") end
for _, w in pairs(adept.lr.decoupled(units)) do assert(w == 1) end
local opt = adept.adamw(m, {lr = 1e-3, weight_decay = 0})
m:loss_and_grad(ds:train():take(1)[1]); opt:step(); m:zero_grad()
local nonzero = 0
for _, s in pairs(adept.importance.units(m, probe)) do if s > 0 then nonzero = nonzero + 1 end end
assert(nonzero > 0, "after one step some copy unit should score above 0")
print(("expanded layer %d -> copy %d; %d copy units score > 0 after one step"):format(copies[1] - 1, copies[1], nonzero))
