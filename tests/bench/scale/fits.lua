-- tests/bench/scale: what fits in how much memory, from adept.plan alone (nothing is allocated): the paper's models
-- (configs as published: shapes and the fields that change the math), fp32 and with bf16 frozen rows, for
-- stage 1, ADEPT training of 4 copies and full CPT. Prints the table docs/model.md carries. Usage: adeptlua fits.lua
local Q = function(h, f, L, kv, tied) return {architectures = {"Qwen3ForCausalLM"}, model_type = "qwen3", vocab_size = 151936,
  hidden_size = h, intermediate_size = f, num_hidden_layers = L, num_attention_heads = h == 2048 and 16 or 32,
  num_key_value_heads = kv, head_dim = 128, max_position_embeddings = 32768, tie_word_embeddings = tied, torch_dtype = "bfloat16"} end
local models = {
  {"Qwen3-1.7B", Q(2048, 6144, 28, 8, true)},
  {"Qwen3-4B", Q(2560, 9728, 36, 8, true)},
  {"Qwen3-8B", Q(4096, 12288, 36, 8, false)},
  {"Llama-3-8B", {architectures = {"LlamaForCausalLM"}, model_type = "llama", vocab_size = 128256, hidden_size = 4096,
    intermediate_size = 14336, num_hidden_layers = 32, num_attention_heads = 32, num_key_value_heads = 8,
    max_position_embeddings = 8192, tie_word_embeddings = false, torch_dtype = "bfloat16"}},
}
local G = 2^30
print("| Model | dtype | stage 1: mask-out, 4 x 1024 | ADEPT, 4 copies, 1 x 2048 | same, recompute | full CPT, 1 x 2048, recompute |")
print("|---|---|---|---|---|---|")
for _, e in ipairs(models) do
  for _, dt in ipairs{"f32", "bf16"} do
    local s1 = adept.plan(e[2], {batch_size = 4, seq_len = 1024, trainable = "none", dtype = dt})
    local a = adept.plan(e[2], {batch_size = 1, seq_len = 2048, trainable = "copies", copies = 4, dtype = dt})
    local ar = adept.plan(e[2], {batch_size = 1, seq_len = 2048, trainable = "copies", copies = 4, dtype = dt, recompute = true})
    local f = adept.plan(e[2], {batch_size = 1, seq_len = 2048, trainable = "all", dtype = dt, recompute = true})
    print(("| %s | %s | %.1f GiB | %.1f GiB | %.1f GiB | %.1f GiB |"):format(e[1], dt, s1.total / G, a.total / G, ar.total / G, f.total / G))
  end
end
