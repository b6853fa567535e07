-- bf16 frozen weights against fp32 (run via tests/bench/bf16/run): accuracy on stories260K converted to bf16 and on
-- a random Qwen3-shaped model, and the forward throughput (frozen model, tokens per second) of both loadings.
local adept = require "adept"
local a = adept.args
local reps = tonumber(a.reps or 5)
local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p '" .. tmp .. "'")

local function mean_loss(m, batches)
  local s, n = 0, 0
  for _, b in ipairs(batches) do local l, k = m:loss(b); s, n = s + l * k, n + k end
  return s / n
end

print("products with bf16 weights: " .. adept.w16_products())

-- stories260K: fp32 original, its bf16 conversion loaded as bf16 (auto) and widened (f32)
local shared = a.shared or "../shared"
if adept.fs.exists(shared .. "/models/stories260K/stories260K.bin") then
  local orig = adept.load(shared .. "/models/stories260K/stories260K.bin")
  orig:save(tmp .. "/stories_bf16", {dtype = "bf16"})
  local auto, f32 = adept.load(tmp .. "/stories_bf16"), adept.load(tmp .. "/stories_bf16", {dtype = "f32"})
  local tok = adept.tokenizer(shared .. "/models/stories260K/tok512.bin")
  local ds = adept.dataset{path = shared .. "/corpora/tinystories_val.txt", tokenizer = tok, seq_len = 256, seed = 1,
                           holdout = 0.1}
  local batches = ds:train():take(16)
  local lo, lf, la = mean_loss(orig, batches), mean_loss(f32, batches), mean_loss(auto, batches)
  print(("RESULT stories260K (16 batches of 8 x 256 TinyStories tokens): loss fp32 original %.6f, bf16 weights in fp32 %.6f, "
    .. "bf16 products %.6f; bf16 products - fp32 on the same weights %+.2e (relative %.1e); weight rounding %+.2e"):format(
    lo, lf, la, la - lf, math.abs(la - lf) / lf, lf - lo))
end

-- a random Qwen3-shaped model (Qwen3's head_dim 128, GQA 2:1, q/k norms; narrower and shallower than 0.6B)
local cfg = {architectures = {"Qwen3ForCausalLM"}, vocab_size = 16384, hidden_size = 1024, intermediate_size = 3072,
             num_hidden_layers = 4, num_attention_heads = 16, num_key_value_heads = 8, head_dim = 128,
             rms_norm_eps = 1e-6, rope_theta = 1000000, max_position_embeddings = 4096}
adept.model(cfg, {seed = 7, init_std = 0.02}):save(tmp .. "/qwen3", {dtype = "bf16"})
local auto, f32 = adept.load(tmp .. "/qwen3"), adept.load(tmp .. "/qwen3", {dtype = "f32"})
local T, B = 512, 2
local rng = 12345
local function rand_ids()
  local rows = {}
  for r = 1, B do
    rows[r] = {}
    for t = 1, T + 1 do rng = (rng * 1103515245 + 12345) % 2147483648; rows[r][t] = rng % cfg.vocab_size end
  end
  local inputs, targets = {}, {}
  for r = 1, B do
    inputs[r], targets[r] = {}, {}
    for t = 1, T do inputs[r][t], targets[r][t] = rows[r][t], rows[r][t + 1] end
  end
  return {inputs = inputs, targets = targets}
end
local batches = {rand_ids(), rand_ids()}
local la, lf = mean_loss(auto, batches), mean_loss(f32, batches)
print(("RESULT qwen3-shaped random (L=4, C=1024, F=3072, V=16384; 2 x %d x %d tokens): loss f32 %.6f, bf16 products %.6f, "
  .. "difference %+.2e (relative %.1e)"):format(B, T, lf, la, la - lf, math.abs(la - lf) / lf))
local ma, mf = auto:memory(), f32:memory()
print(("RESULT weights in memory: bf16 auto %.1f MiB (fp32 %.1f + 16-bit %.1f), f32 %.1f MiB"):format(
  ma.params / 2^20, ma.params_f32 / 2^20, ma.params_16 / 2^20, mf.params / 2^20))

-- forward throughput: median of reps timed forward passes (loss) over one batch, after a warm-up pass
local function time_forward(m)
  m:loss(batches[1])
  local ts = {}
  for i = 1, reps do
    local t0 = adept.now()
    m:loss(batches[1])
    ts[i] = adept.now() - t0
  end
  table.sort(ts)
  return ts[(reps + 1) // 2]
end
local ta, tf = time_forward(auto), time_forward(f32)
-- the products with the weight matrices (the embedding is a gather; attention aside)
local flops = 2 * B * T * (auto:memory().params_16 / 2 - cfg.vocab_size * cfg.hidden_size)
print(("RESULT forward 1 x (%d x %d) tokens, median of %d: f32 %.3f s (%.0f tok/s, %.0f GFLOP/s), bf16 %.3f s (%.0f tok/s, "
  .. "%.0f GFLOP/s): bf16/f32 throughput %.2fx"):format(B, T, reps, tf, B * T / tf, flops / tf / 1e9, ta, B * T / ta,
  flops / ta / 1e9, tf / ta))
os.execute("rm -rf '" .. tmp .. "'")
