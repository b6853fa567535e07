-- Times adept.importance.layers{metric="mask_out"} against the naive L+1 full passes on the same probe and checks
-- they agree; prints the layer-evaluation counts and the wall-time ratio.
local adept = require "adept"
local a = adept.args
local dir = a.shared .. "/models/stories260K/stories260K.bin"
local tok = adept.tokenizer(a.shared .. "/models/stories260K/tok512.bin")
local m = adept.load(dir)
local ds = adept.dataset{path = a.shared .. "/corpora/tinystories_val.txt", tokenizer = tok, seq_len = a.seq_len,
                         seed = 1, holdout = 0.1}
local probe = ds:train():take(a.batches)
local function naive()
  local function loss() local s, n = 0, 0; for _, b in ipairs(probe) do local l, k = m:loss(b); s, n = s + l * k, n + k end; return s / n end
  local base, out = loss(), {}
  for l = 0, m:num_layers() - 1 do out[l] = m:with_layers_skipped({l}, loss) - base end
  return out
end
m:loss(probe[1]) -- plan the buffers outside the timings
local t0 = adept.now()
local fast, rec = adept.importance.layers(m, probe, {metric = "mask_out"})
local t_fast = adept.now() - t0
t0 = adept.now()
local slow = naive()
local t_naive = adept.now() - t0
local worst = 0
for l = 0, m:num_layers() - 1 do worst = math.max(worst, math.abs(fast[l] - slow[l])) end
print(("stories260K: %d layers, probe %d batches x %s, %d tokens, threads %d"):format(m:num_layers(), #probe,
  table.concat(rec.probe.batch_shape, "x"), rec.details.tokens, adept.threads()))
print(("layer evaluations: resumed %d, naive %d (%.0f%% fewer)"):format(rec.details.layer_evals,
  rec.details.naive_layer_evals, 100 * rec.details.saving))
print(("wall: resumed %.3f s, naive %.3f s, ratio %.2fx; max |difference| %.3g"):format(t_fast, t_naive,
  t_naive / t_fast, worst))
