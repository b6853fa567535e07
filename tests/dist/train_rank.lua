-- One side of tests/dist/equivalence.sh: trains a tiny model (Llama, or Qwen3 with arch=qwen3) for `steps`
-- steps from a deterministic micro-batch function and writes, from rank 0, the loss of every step and the
-- final weights. Run as 1 process with grad_accum=2 or as 2 processes with grad_accum=1: the same tokens.
-- ckpt=DIR checkpoints every step and resumes from DIR; die_at=S makes rank 1 kill itself (SIGKILL) at step S.
local a = adept.args
local out = assert(a.out, "out= is required")
local cfg = {vocab_size = 64, hidden_size = 32, intermediate_size = 48, num_hidden_layers = 3, num_attention_heads = 4,
             num_key_value_heads = 2, max_position_embeddings = 64}
if a.arch == "qwen3" then
  cfg.architectures, cfg.model_type, cfg.head_dim, cfg.tie_word_embeddings = {"Qwen3ForCausalLM"}, "qwen3", 16, true
end
local m = adept.model(cfg, {seed = 11})
local function batch(i) -- micro-batch i of the global stream: 2 rows of 16 tokens, a few targets ignored
  local inputs, targets = {}, {}
  for r = 1, 2 do
    local x, y = {}, {}
    for t = 1, 16 do
      x[t] = (i * 37 + r * 11 + t * 7) % 64
      y[t] = (t + i) % 7 == 0 and -1 or (i * 13 + r * 5 + t * 3) % 64
    end
    inputs[r], targets[r] = x, y
  end
  return {inputs = inputs, targets = targets}
end
local opt = adept.adamw(m, {lr = 3e-3, shard_optimizer = a.shard == true})
local losses = {}
local steps = math.tointeger(a.steps or 6)
local die_at = math.tointeger(a.die_at)
adept.train{model = m, optimizer = opt, data = batch, steps = steps,
            grad_accum = math.tointeger(a.grad_accum or 1), clip = 1.0, progress = false, bucket_mb = a.bucket_mb,
            checkpoint = a.ckpt and {dir = a.ckpt, every = 1, keep = 2} or nil, resume = a.ckpt ~= nil,
            log = out .. ".metrics.jsonl", eval_every = 3, eval_batches = 3,
            eval = {held = {batch(1000), batch(1001), batch(1002)}, other = {batch(2000)}},
            every = {[1] = function(ctx)
              if ctx.step == die_at and adept.dist.rank() == 1 then os.execute("kill -9 " .. adept.getpid()) end
            end}}
-- the optimizer memory of every rank (ZeRO-1 holds 1/N of the moments per rank), summed on rank 0
local mine = adept.memory(m, opt).optimizer_allocated
local bytes = adept.dist.sum({mine})[1]
if adept.dist.is_main() then -- rank 0 alone writes the log and the results
  local f = assert(io.open(out .. ".optimizer_bytes", "w"))
  f:write(("%d %d\n"):format(mine, math.tointeger(bytes)))
  f:close()
  -- the losses of every step, from the metrics log (a resumed run keeps the lines of the steps before it)
  for line in io.lines(out .. ".metrics.jsonl") do
    local r = adept.json.decode(line)
    if r.type == "train" then losses[r.step] = r.loss end
  end
  local f = assert(io.open(out .. ".losses", "w"))
  for _, l in ipairs(losses) do f:write(("%.17g\n"):format(l)) end
  f:close()
  m:save(out .. ".model")
end
