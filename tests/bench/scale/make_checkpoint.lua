-- tests/bench/scale: writes a random-weight checkpoint with a real model's config (shapes only) as sharded bf16
-- safetensors, once, into out= (skipped when out/config.json exists). Usage: adeptlua make_checkpoint.lua
-- shape=qwen3_1_7b out=DIR
local a = adept.args
local SHAPES = {
  -- Qwen/Qwen3-1.7B-Base config.json (shapes and the fields that change the math)
  qwen3_1_7b = {architectures = {"Qwen3ForCausalLM"}, model_type = "qwen3", vocab_size = 151936, hidden_size = 2048,
    intermediate_size = 6144, num_hidden_layers = 28, num_attention_heads = 16, num_key_value_heads = 8,
    head_dim = 128, max_position_embeddings = 32768, rope_theta = 1000000, rms_norm_eps = 1e-6,
    tie_word_embeddings = true},
  -- meta-llama/Meta-Llama-3-8B config.json
  llama3_8b = {architectures = {"LlamaForCausalLM"}, model_type = "llama", vocab_size = 128256, hidden_size = 4096,
    intermediate_size = 14336, num_hidden_layers = 32, num_attention_heads = 32, num_key_value_heads = 8,
    max_position_embeddings = 8192, rope_theta = 500000, rms_norm_eps = 1e-5, tie_word_embeddings = false},
}
local cfg = assert(SHAPES[a.shape], "shape= must be qwen3_1_7b or llama3_8b")
local out = assert(a.out, "out= is required")
if adept.fs.exists(out .. "/config.json") then print("exists: " .. out) return end
local t0 = adept.now()
if a.shape == "llama3_8b" then
  -- 32 GB in fp32 does not fit this machine: make_weights.py streams bf16 shards a chunk at a time (its own RNG),
  -- and config.json goes in last, so an interrupted run is redone
  adept.fs.mkdir_p(out)
  cfg.torch_dtype = "bfloat16"
  local tmp = out .. "/config.json.tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(adept.json.encode(cfg))
  f:close()
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  local ok = os.execute(("/usr/bin/python3 '%s/make_weights.py' '%s' '%s'"):format(here, tmp, out))
  assert(ok, "make_weights.py failed")
  os.rename(tmp, out .. "/config.json")
else
  local m = adept.model(cfg, {seed = 1, init_std = 0.02})
  m:save(out, {dtype = "bf16", max_shard_bytes = 2 * 1024 * 1024 * 1024})
end
print(("wrote %s (%s, bf16 shards) in %.1f s"):format(out, a.shape, adept.now() - t0))
