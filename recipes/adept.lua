-- ADEPT (arXiv 2510.10071), spelled out from the primitives: stage 1 measures how much each layer matters to
-- general ability on a probe, the k least important layers get identity copies and only the copies train;
-- stage 2 gives every trainable tensor a learning rate 2(Imax-I)/(Imax-Imin) x lr from its general-probe
-- importance, refreshed every `refresh` steps. Copy this file to start an ablation: each stage is one block.
-- It gives bitwise the results of adept.cpt's "adept" method with the same options (tests/recipes/adept_spelled_out.lua).
--   adeptlua recipes/adept.lua k=2 metric=mask_out steps=150 lr=1e-3 refresh=50 seq_len=64 batch_size=8 out=runs/adept
--   adeptlua recipes/adept.lua --help      (every option, its default and range)
-- Writes <out>/: run.json (provenance), importance.json, metrics.jsonl, checkpoints/, model/, summary.json, report.md.
local adept = require "adept"
local cpt = require "adept.cpt"           -- the shared option declarations and model/tokenizer path helpers
local P = require "adept.provenance"

-- Options: adept.cpt's declarations, so defaults, ranges and --help match the other recipes.
local o = cpt.options("adept")
o.out = o.out or ("runs/adept-lr%g-s%d"):format(o.lr, o.seed)

-- Run identity: skip this exact run if it is finished; another run in out= is an error (force=true replaces it).
local recipe, modules = P.recipe(), P.modules()
local id, id_parts = P.identity(o, recipe, modules)
if o.force and adept.fs.exists(o.out) then adept.fs.remove_tree(o.out) end
if P.check_out(o.out, id, id_parts, "recipes/adept.lua", adept.fs.exists(o.out .. "/summary.json")) == "finished" then
  print("finished already: " .. o.out .. " (force=true reruns it)")
  return
end
local t_start = adept.now()

-- Model and tokenizer, checked against each other before any corpus is read.
local model_path = cpt.resolve_model(o.model)
local m = adept.load(model_path)
local base = adept.load(model_path)       -- the untouched model, for the token-shift measure
local tok, tok_path = cpt.tokenizer_for(o.model)
assert(tok:vocab_size() <= m.config.vocab_size, "tokenizer and model do not match")
local rec = P.start{out = o.out, options = o, recipe = recipe, modules = modules, identity = id,
  identity_parts = id_parts, inputs = {model_path, tok_path, o.general, o.domain}}

-- Data: fixed held-out splits and probe (dataset seed 1); the seed only moves the domain stream.
local general = adept.dataset{path = o.general, tokenizer = tok, seq_len = o.seq_len, holdout = 0.1, seed = 1,
  progress = false, batch_size = o.batch_size, max_documents = o.max_documents, doc_split = o.general_doc_split}
local domain = adept.dataset{path = o.domain, tokenizer = tok, seq_len = o.seq_len, holdout = 0.05, seed = 1,
  progress = false, batch_size = o.batch_size, max_documents = o.max_documents, doc_split = o.domain_doc_split}
local eval_sets = {general = general:holdout():take(o.eval_batches, o.batch_size),
                   domain = domain:holdout():take(o.eval_batches, o.batch_size)}
local probe = general:train():take(o.probe_batches, o.batch_size)
local function losses()
  return {general = adept.eval.perplexity(m, eval_sets.general).loss,
          domain = adept.eval.perplexity(m, eval_sets.domain).loss}
end
local before = losses()

-- Stage 1: layer importance on the general probe (importance.json), then the k least important layers.
local t0 = adept.now()
local scores = adept.importance.layers(m, probe, {metric = o.metric, out = o.out})
local importance_seconds = adept.now() - t0
local chosen = adept.select.least_important(scores, o.k)

-- Expansion: identity copies (output projections zeroed, so the model computes exactly what it did).
local n_orig, base_params = m:num_layers(), 0
for _, name in ipairs(base:param_names()) do base_params = base_params + base:param(name):numel() end
local copies = m:expand(chosen, {init = "identity"})

-- Freezing: only the copies train.
m:freeze("all")
for _, l in ipairs(copies) do m:unfreeze("^model%.layers%." .. l .. "%.") end

-- Stage 2: per-unit learning rates from unit importance on the probe, refreshed every `refresh` steps
-- (the first at step `refresh`: fresh copies score exactly 0; none after the last update).
local opt = adept.adamw(m, {lr = o.lr, weight_decay = o.weight_decay})
local every = {[o.refresh] = function(ctx)
  if ctx.step >= o.steps then return end
  local units = adept.importance.units(m, probe)
  opt:set_lr_scales((adept.lr.decoupled(units, {max_scale = o.max_scale, normalize = o.normalize, model = m})))
end}

-- Training on the domain stream: seed s starts s x steps batches in, so seeds see disjoint data.
local stream = domain:train()
stream:set_cursor({epoch = 0, position = 0})
for _ = 1, o.seed * o.steps do stream:next_batch(o.batch_size) end
local log = o.out .. "/metrics.jsonl"
t0 = adept.now()
local res = adept.train{model = m, optimizer = opt, data = stream, steps = o.steps, batch_size = o.batch_size,
  schedule = cpt.make_schedule(o), clip = o.clip, every = every,
  eval = o.eval_every > 0 and eval_sets or nil, eval_every = o.eval_every > 0 and o.eval_every or nil,
  checkpoint = {dir = o.out .. "/checkpoints", every = o.checkpoint_every > 0 and o.checkpoint_every or o.steps, keep = 1},
  resume = true, log = log, progress = o.progress}
local train_seconds = res.elapsed or (adept.now() - t0)

-- Evaluation: held-out losses after training and the share of general-holdout tokens whose top-1 prediction moved.
local after = losses()
local shift_g = adept.eval.token_shift(base, m, {table.unpack(eval_sets.general, 1, o.shift_batches)})
local shift_d = adept.eval.token_shift(base, m, {table.unpack(eval_sets.domain, 1, o.shift_batches)})
local f = assert(io.open(log, "a"))
f:write(adept.json.encode({type = "eval", step = 0, loss = before}), "\n")
f:write(adept.json.encode({type = "eval", step = res.steps, loss = after}), "\n")
f:close()
m:save(o.out .. "/model")

-- Report: summary.json (the fields adept.report reads), run.json's result, report.md with charts.
local trainable, total = m:trainable_params(), 0
for _, name in ipairs(m:param_names()) do total = total + m:param(name):numel() end
local summary = {name = o.name or o.out:match("([^/]+)$"), method = "adept", lr = o.lr, seed = o.seed,
  placement = "importance", train = "copies", lr_policy = "decoupled", normalize = o.normalize, metric = o.metric,
  k = o.k, replay = 0, expanded_layers = copies, expanded_from = chosen, trained_layers = copies,
  general_before = before.general, general_after = after.general, domain_before = before.domain,
  domain_after = after.domain, trainable_params = trainable, total_params = total, base_params = base_params,
  trainable_share = trainable / total, steps = res.steps, batch_size = o.batch_size, seq_len = o.seq_len,
  tokens = res.tokens_seen, replay_tokens = 0, train_seconds = train_seconds,
  step_seconds = train_seconds / math.max(1, res.steps), importance_seconds = importance_seconds,
  lr_refreshes = math.max(0, res.steps - 1) // o.refresh, refresh = o.refresh,
  schedule = tostring(cpt.make_schedule(o)), warmup = o.warmup, min_ratio = o.min_ratio,
  weight_decay = o.weight_decay, clip = o.clip, probe_batches = o.probe_batches, max_scale = o.max_scale,
  token_shift_general = shift_g.share, token_shift_domain = shift_d.share, kl_general = shift_g.kl,
  wall_time = adept.now() - t_start + math.max(0, train_seconds - (adept.now() - t0)), threads = adept.threads(),
  model = model_path, general = o.general, domain = o.domain}
adept.json.write(o.out .. "/summary.json", summary, {pretty = true})
P.finish(rec, summary)
if o.report then adept.report{dir = o.out} end
print(("adept: general %.4f -> %.4f, domain %.4f -> %.4f, copies of layers %s, trainable %.1f%%, %.3f s/step; %s")
  :format(before.general, after.general, before.domain, after.domain, table.concat(chosen, ","),
    100 * summary.trainable_share, summary.step_seconds, o.out))
