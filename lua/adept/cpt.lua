-- adept.cpt: one continual-pretraining run described by a few method fields, shared by recipes/adept.lua,
-- the baselines and the ablations, so the only differences between methods are the fields each recipe sets.
--
-- A method is four choices (see METHODS below for the named ones):
--   placement  where identity copies go: "none" | "importance" | "uniform" | "random" | "top" | "bottom" | {layers}
--   train      what trains: "all" | "copies" | "top" (top k original layers) | "least_important" (originals)
--              | "lora" (low-rank adapters on the base, m:add_lora with lora_rank / lora_alpha / lora_targets;
--              the base frozen; the saved model is merged, the PEFT adapter saved beside it in adapter/)
--   lr_policy  per-unit LR multipliers: "one" | "decoupled" | "uniform" | "inverted" | "shuffled" (refreshed
--              every `refresh` steps from general-probe unit importance; the first refresh at step `refresh`)
--   replay     fraction r of general tokens mixed into every domain batch (token-level, deterministic)
--   consolidate  "tasl": after training, every skill unit becomes an importance-weighted average of its weights
--              before and after (adept.tasl; units important on the general probe keep more of the old weights)
-- Every run sees the same token budget: steps x batch_size x grad_accum x processes x seq_len target tokens.
-- Choices: seeds change the order of the domain (and replay) data only -- the holdout split, the probe and
-- the base model are fixed (dataset seed 1), so seeds measure data-order variance; "random" placement also
-- uses the seed. Evaluations are token-weighted losses on fixed holdout batches, taken before and after
-- training outside the timed loop, so wall time per step is the method's training cost (refreshes included).
local adept = require "adept"

local M = {}

local shared = os.getenv("ADEPT_SHARED") or "../shared"

M.defaults = {
  model = shared .. "/models/stories260K",
  general = shared .. "/corpora/tinystories_val.txt",
  domain = shared .. "/corpora/medquad.txt.gz",
  k = 2, metric = "mask_out", steps = 150, lr = 1e-3, refresh = 50, seq_len = 64, batch_size = 8,
  seed = 0, normalize = "by_kind", warmup = 10, min_ratio = 0.1, weight_decay = 0.1, betas = {0.9, 0.95}, clip = 1.0,
  probe_batches = 4, eval_batches = 16, shift_batches = 4, replay = 0, max_scale = 2,
  checkpoint_every = 0, eval_every = 0, force = false, report = true, max_documents = 0,
  general_doc_split = "blank_line", domain_doc_split = "blank_line", progress = true, shard_optimizer = false, grad_accum = 1,
}

-- The named methods: everything else about a run is shared.
M.METHODS = {
  adept      = {placement = "importance", train = "copies", lr_policy = "decoupled"},
  full_cpt   = {placement = "none", train = "all", lr_policy = "one"},
  llama_pro  = {placement = "uniform", train = "copies", lr_policy = "one"},
  freeze_top = {placement = "none", train = "top", lr_policy = "one"},
  replay     = {placement = "none", train = "all", lr_policy = "one", replay = 0.25},
  no_stage1  = {placement = "none", train = "least_important", lr_policy = "decoupled"},
  no_stage2  = {placement = "importance", train = "copies", lr_policy = "one"},
  tasl       = {placement = "none", train = "all", lr_policy = "one", consolidate = "tasl"},
  pt_lora    = {placement = "none", train = "lora", lr_policy = "one"},
}

local function fail(msg, ...) error("adept.cpt: " .. msg:format(...), 0) end

-- The declared options (adept.options): every key a recipe or the command line may set, with its type and range.
local METRIC_NAMES = {"mask_out", "mask_out_batches", "grad_weight", "rank", "fisher", "block_influence"}
local function declarations()
  local metrics = {}
  for _, n in ipairs(METRIC_NAMES) do metrics[#metrics + 1] = n end
  for n in pairs(adept.importance.metrics) do -- custom metrics registered by the recipe
    local known = false
    for _, x in ipairs(metrics) do if x == n then known = true end end
    if not known then metrics[#metrics + 1] = n end
  end
  local pos = {min = 1}
  return {
    help = "adept.cpt: one continual-pretraining run (see docs/recipes.md)",
    {name = "method", help = "the method's name (recorded in the summary)"},
    {name = "model", help = "HF model directory or llama2.c checkpoint"},
    {name = "general", type = {"string", "table"}, help = "general-domain corpus (probe, replay, eval)"},
    {name = "domain", type = {"string", "table"}, help = "domain corpus (training, eval)"},
    {name = "out", help = "run directory (default runs/<method>-lr<lr>-s<seed>)"},
    {name = "name", help = "the run's name in reports"},
    {name = "placement", type = {"string", "list", "function"}, help = "where identity copies go: a name, "
      .. "a list of layers, or function(scores, n_layers, o) -> layers",
      choices = {"none", "importance", "uniform", "random", "top", "bottom", "most_important"}},
    {name = "train", type = {"string", "list"}, choices = {"all", "copies", "top", "least_important", "lora"},
      help = "what trains: a name or a list of original layers"},
    {name = "lora_rank", type = "integer", min = 1, help = "train=\"lora\": adapter rank (default 8)"},
    {name = "lora_alpha", type = "number", min = 0, help = "train=\"lora\": adapter alpha; scale alpha/rank (default 16)"},
    {name = "lora_targets", type = "list", help = "train=\"lora\": projections adapted (default all seven)"},
    {name = "lr_policy", type = {"string", "function"}, choices = {"one", "decoupled", "uniform", "inverted", "shuffled"},
      help = "per-unit LR multipliers: a name or function(unit_scores, o) -> {unit -> scale}"},
    {name = "metric", type = {"string", "function"}, choices = metrics,
      help = "stage-1 layer importance: a name in adept.importance.metrics or function(m, batches) -> {layer -> score}"},
    {name = "schedule", type = {"string", "function", "table"}, choices = {"cosine", "linear", "constant"},
      help = "LR schedule: a name (with warmup, min_ratio) or a schedule / function(step, total) -> factor"},
    {name = "k", type = "integer", min = 1, help = "layers to expand (or train)"},
    {name = "steps", type = "integer", min = 1, help = "training steps"},
    {name = "lr", type = "number", min = 0, help = "peak learning rate"},
    {name = "refresh", type = "integer", min = 1, help = "steps between LR-scale refreshes"},
    {name = "seq_len", type = "integer", min = 1, help = "tokens per sequence"},
    {name = "batch_size", type = "integer", min = 1, help = "sequences per micro-batch (per process)"},
    {name = "grad_accum", type = "integer", min = 1,
     help = "micro-batches per optimizer step (sequences per step: batch_size x grad_accum x processes)"},
    {name = "seed", type = "integer", min = 0, help = "data-order seed (default: --seed N)"},
    {name = "normalize", choices = {"all", "by_kind", "by_layer"}, help = "LR-scale normalisation groups"},
    {name = "warmup", type = "integer", min = 0, help = "warmup steps"},
    {name = "min_ratio", type = "number", min = 0, max = 1, help = "final LR as a fraction of the peak"},
    {name = "weight_decay", type = "number", min = 0, help = "AdamW weight decay"},
    {name = "betas", type = "list", help = "AdamW beta1,beta2 (default 0.9,0.95; HF Trainer's are 0.9,0.999)"},
    {name = "clip", type = "number", min = 0, help = "gradient-norm clip (0: none)"},
    {name = "probe_batches", type = "integer", min = 1, help = "general probe batches for importance"},
    {name = "eval_batches", type = "integer", min = 1, help = "held-out batches per evaluation"},
    {name = "shift_batches", type = "integer", min = 0, help = "batches for the token-shift measure"},
    {name = "replay", type = "number", min = 0, max = 1, help = "share of general tokens mixed into domain batches"},
    {name = "max_scale", type = "number", min = 0, help = "largest LR multiplier"},
    {name = "checkpoint_every", type = "integer", min = 0, help = "steps between checkpoints (0: at the end)"},
    {name = "eval_every", type = "integer", min = 0, help = "steps between evaluations (0: before and after)"},
    {name = "force", type = "boolean", help = "rerun even when out= holds this run, replace another run there"},
    {name = "report", type = "boolean", help = "write report.md"},
    {name = "shard_optimizer", type = "boolean",
     help = "ZeRO-1 under several processes: each rank holds 1/N of the Adam moments (docs/distributed.md)"},
    {name = "max_documents", type = "integer", min = 0, help = "documents read per corpus (0: all)"},
    {name = "general_doc_split", choices = {"blank_line", "line", "file"}, help = "general corpus document split"},
    {name = "domain_doc_split", choices = {"blank_line", "line", "file"}, help = "domain corpus document split"},
    {name = "progress", type = "boolean", help = "progress line while training"},
    {name = "allow_nonfinite", type = "boolean", help = "load weights holding NaN or infinity"},
    -- no default, so runs that do not set it keep their identity; unset means adept.load's "auto"
    {name = "dtype", choices = {"auto", "f32", "bf16"},
     help = "weights of a bf16/f16 checkpoint: \"auto\" keeps frozen matrices in it, \"f32\" widens all, " ..
            "\"bf16\" keeps every matrix in bf16 (rounding an fp32 checkpoint's)"},
    -- no default either: unset means adept.load's (bf16 on cuda, f32 on the cpu)
    {name = "precision", choices = {"f32", "bf16"},
     help = "products of fp32 weights: \"bf16\" rounds their operands (mixed precision), \"f32\" exact"},
    -- TaSL (adept.tasl, docs/adept.md): no defaults here, so the other methods' options stay as they were; unset
    -- means adept.tasl.defaults
    {name = "consolidate", choices = {"none", "tasl"},
     help = "after training: \"tasl\" averages each skill unit's weights before and after by importance"},
    {name = "tasl_granularity", choices = {"row", "tensor"}, help = "TaSL skill unit: a matrix row or a whole tensor"},
    {name = "tasl_beta1", type = "number", min = 0, max = 0.999999, help = "TaSL sensitivity smoothing (EMA) factor"},
    {name = "tasl_beta2", type = "number", min = 0, max = 0.999999, help = "TaSL uncertainty smoothing (EMA) factor"},
    {name = "tasl_normalize", choices = {"minmax", "none"}, help = "TaSL unit scores: min-max over all units, or raw"},
    {name = "tasl_rule", choices = {"ratio", "threshold"},
     help = "TaSL share kept: old/(old+new), or the official code's top-20% threshold cases"},
  }, pos
end
M.declarations = declarations

-- defaults < method fields < spec (what the recipe fixes) < command-line overrides (adept.args), each layer
-- checked against the declarations (unknown keys and bad values are errors before any work). The seed
-- defaults to adept.seed (--seed N).
function M.options(method, spec, args)
  local decls = declarations()
  local defaults = {}
  for k, v in pairs(M.defaults) do defaults[k] = v end
  defaults.seed = adept.seed or 0
  local layers = {{values = defaults, where = " (adept.cpt.defaults)", name = "default"},
    {values = M.METHODS[method] or {}, where = (" (method %s)"):format(tostring(method)), name = "method"},
    {values = spec or {}, where = " (set by the recipe)", name = "recipe"},
    {values = args or adept.args or {}, where = " (command line)", name = "command line"}}
  local ok, o = pcall(require("adept.options").resolve, decls, layers, "adept.cpt",
    arg and arg[0] and (arg[0] .. " (adept.cpt options)"))
  if not ok then error(o, 2) end
  o.method = o.method or method
  local b = o.betas
  if #b ~= 2 or type(b[1]) ~= "number" or type(b[2]) ~= "number" or not (b[1] >= 0 and b[1] < 1 and b[2] >= 0 and b[2] < 1) then
    local shown = {}
    for i, x in ipairs(b) do shown[i] = tostring(x) end
    error(("adept.cpt: betas must be two numbers in [0, 1) (beta1,beta2), got %s"):format(table.concat(shown, ",")), 2)
  end
  return o
end

local function file_exists(p) local f = io.open(p, "rb"); if f then f:close() return true end return false end

-- A model directory without config.json (llama2.c) resolves to its single .bin checkpoint.
local function resolve_model(path)
  if file_exists(path .. "/config.json") or not adept.fs.exists(path) or path:match("%.bin$") then return path end
  for _, name in ipairs(adept.fs.list(path)) do
    if name:match("%.bin$") and not name:match("^tok") then return path .. "/" .. name end
  end
  return path
end

-- The tokenizer of a model path, and the path it was read from (for provenance).
local function tokenizer_for(path)
  local ok, tok = pcall(adept.tokenizer, path)
  if ok then return tok, path end
  for _, name in ipairs(adept.fs.exists(path) and adept.fs.list(path) or {}) do
    if name:match("^tok.*%.bin$") or name == "tokenizer.json" then
      return adept.tokenizer(path .. "/" .. name), path .. "/" .. name
    end
  end
  error(tok, 0)
end

M.resolve_model, M.tokenizer_for = resolve_model, tokenizer_for

local function layer_pattern(l) return "^model%.layers%." .. l .. "%." end

local function param_count(m, only_trainable)
  local n = 0
  for _, name in ipairs(m:param_names()) do
    if not only_trainable or m:grad(name) ~= nil then n = n + m:param(name):numel() end
  end
  return n
end

-- Token-weighted loss over fixed batches.
local function eval_loss(m, batches) return adept.eval.perplexity(m, batches, {split_ranks = true}).loss end

-- Token-level replay: micro-batch i takes its first g_i tokens (row-major) from a general batch and the rest
-- from a domain batch, g_i chosen so that the cumulative general share is round(r * tokens so far).
local function replay_source(domain, general, r, bs)
  local seen, general_seen = 0, 0
  local stats = {general_tokens = 0, domain_tokens = 0}
  local function fn()
    local d, g = domain:next_batch(bs), general:next_batch(bs)
    local di, dt = d.inputs:table(), d.targets:table()
    local gi, gt = g.inputs:table(), g.targets:table()
    local B, T = #di, #di[1]
    local target = math.floor(r * (seen + B * T) + 0.5)
    local take = target - general_seen
    local k = 0
    for row = 1, B do
      for t = 1, T do
        k = k + 1
        if k <= take then di[row][t], dt[row][t] = gi[row][t], gt[row][t] end
      end
    end
    seen, general_seen = seen + B * T, general_seen + take
    stats.general_tokens, stats.domain_tokens = general_seen, seen - general_seen
    return {inputs = adept.tensor(di, "int32"), targets = adept.tensor(dt, "int32")}
  end
  return fn, stats
end

M.replay_source = replay_source

-- Stage 1: layer scores on the general probe (only when a choice needs them).
local function layer_scores(m, probe, o, out)
  local scores, record = adept.importance.layers(m, probe, {metric = o.metric, out = out})
  return scores, record
end

-- Which original layers are chosen for expansion (or training, without expansion).
local function choose_layers(kind, n, o, scores)
  local sel = adept.select
  if type(kind) == "table" then return kind end
  if type(kind) == "function" then
    local layers = kind(scores, n, o)
    if type(layers) ~= "table" then fail("the placement function must return a list of layers, got %s", type(layers)) end
    return layers
  end
  if kind == "importance" or kind == "least_important" then return sel.least_important(scores, o.k) end
  if kind == "most_important" then return sel.most_important(scores, o.k) end
  if kind == "uniform" then return sel.uniform(n, o.k) end
  if kind == "random" then return sel.random(n, o.k, o.seed) end
  if kind == "top" then return sel.top(n, o.k) end
  if kind == "bottom" then return sel.bottom(n, o.k) end
  fail("unknown placement %q", tostring(kind))
end

local function lr_scales(policy, scores, o, m)
  if type(policy) == "function" then return policy(scores, o) end
  local opts = {max_scale = o.max_scale, normalize = o.normalize, seed = o.seed, model = m}
  if policy == "decoupled" then return adept.lr.decoupled(scores, opts) end
  if policy == "uniform" then return adept.lr.uniform(scores) end
  if policy == "inverted" then return adept.lr.inverted(scores, opts) end
  if policy == "shuffled" then return adept.lr.shuffled(scores, opts) end
  fail("unknown lr_policy %q", tostring(policy))
end

-- The schedule: a name (built with warmup and min_ratio), or a schedule object / function used as given.
local function make_schedule(o)
  local sch = o.schedule or "cosine"
  if type(sch) ~= "string" then return sch end
  if sch == "constant" then return adept.schedule.constant{warmup = o.warmup} end
  return adept.schedule[sch]{warmup = o.warmup, min_ratio = o.min_ratio}
end
M.make_schedule = make_schedule

local function describe(v)
  if type(v) == "function" then return "<function>" end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return table.concat(parts, ",")
  end
  return v
end

-- Only rank 0 writes files under several processes (adept.dist); the others compute the same values.
local function is_main() return adept.dist.is_main() end
local function write_json(path, v) if is_main() then adept.json.write(path, v, {pretty = true}) end end
-- The writer's lock on out= (adept.fs.lock: a second run there is refused naming this one's PID); nil on the
-- other ranks, which write nothing.
local function lock_out(out)
  if not is_main() then return nil end
  adept.fs.mkdir_p(out)
  return adept.fs.lock(out .. "/.adept.lock")
end

local function read_json(path)
  local ok, v = pcall(adept.json.read, path)
  return ok and v or nil
end

-- Data shared by every run of one process (sweeps reuse them): datasets, fixed eval and probe batches.
local data_cache = {}
local function load_data(o, tok)
  local function name(p) return type(p) == "table" and table.concat(p, ",") or tostring(p) end
  local key = table.concat({name(o.general), name(o.domain), o.seq_len, o.batch_size, o.grad_accum or 1, o.eval_batches,
    o.probe_batches, o.max_documents, o.general_doc_split or "", o.domain_doc_split or ""}, "|")
  if data_cache[key] then return data_cache[key] end
  local general = adept.dataset{path = o.general, tokenizer = tok, seq_len = o.seq_len, holdout = 0.1, seed = 1,
    progress = false, batch_size = o.batch_size, max_documents = o.max_documents, doc_split = o.general_doc_split}
  local domain = adept.dataset{path = o.domain, tokenizer = tok, seq_len = o.seq_len, holdout = 0.05, seed = 1,
    progress = false, batch_size = o.batch_size, max_documents = o.max_documents, doc_split = o.domain_doc_split}
  -- Evaluation and probe cover the windows of eval_batches / probe_batches GLOBAL batches (batch_size x
  -- grad_accum x processes sequences), so runs that differ only in how a step's sequences are split measure on
  -- the same tokens. Evaluation is a token-weighted sum, so it reads them in micro-batches of batch_size; unit
  -- importance averages |gradient of each batch|, which depends on how the rows are grouped, so the probe keeps
  -- whole global batches (its memory is that of a global batch).
  local per = adept.dist.world_size() * (o.grad_accum or 1)
  local d = {general = general, domain = domain,
    eval = {general = general:holdout():take(o.eval_batches * per, o.batch_size),
            domain = domain:holdout():take(o.eval_batches * per, o.batch_size)},
    probe = general:train():take(o.probe_batches, o.batch_size * per),
    probe_size = o.batch_size * per}
  data_cache[key] = d
  return d
end

-- Runs one method; returns the summary table (also written to <out>/summary.json).
function M.run(o)
  if type(o) ~= "table" then fail("run expects an options table (adept.cpt.options(...))") end
  o.out = o.out or ("runs/%s-lr%g-s%d"):format(o.method or "run", o.lr, o.seed)
  local P = require "adept.provenance"
  -- one writer per output directory: a second run on out= is refused at once naming the first's PID (its
  -- force=true would remove the checkpoints the first is writing); released when this function ends
  local lock <close> = lock_out(o.out)
  -- identity first: out= either holds this run (skip when finished, resume otherwise) or is an error
  local recipe, modules = P.recipe(), P.modules()
  local id, parts = P.identity(o, recipe, modules)
  local previous
  if o.force then
    for _, f in ipairs{"summary.json", "metrics.jsonl", "importance.json", "run.json", "report.md", "tasl.json"} do
      if is_main() then os.remove(o.out .. "/" .. f) end
    end
    for _, d in ipairs{"checkpoints", "model"} do
      if is_main() and adept.fs.exists(o.out .. "/" .. d) then adept.fs.remove_tree(o.out .. "/" .. d) end
    end
  else
    local has_results = adept.fs.exists(o.out .. "/summary.json") or adept.fs.exists(o.out .. "/checkpoints")
    local state
    state, previous = P.check_out(o.out, id, parts, "adept.cpt", has_results)
    local done = state == "finished" and read_json(o.out .. "/summary.json")
    if done then
      adept.log("info", "adept.cpt: " .. o.out .. " is finished (same options, recipe and engine), skipped "
        .. "(force=true reruns it)")
      return done
    end
  end
  -- every rank has read out= as it was before rank 0 writes into it
  adept.dist.barrier()
  if is_main() then adept.fs.mkdir_p(o.out) end
  local t_start = adept.now()
  -- the model first: a wrong path is a model error, and the tokenizer is checked against it before any corpus
  if not adept.fs.exists(o.model) then fail("model: %s does not exist", o.model) end
  local model_path = resolve_model(o.model)
  local m = adept.load(model_path, {allow_nonfinite = o.allow_nonfinite or nil, dtype = o.dtype,
                                    precision = o.precision})
  local tok, tok_path = tokenizer_for(o.model)
  local vocab = m.config.vocab_size
  if tok:vocab_size() > vocab then
    fail("tokenizer and model do not match: the tokenizer %s has %d tokens, the model %s a vocabulary of %d "
      .. "(ids past %d would index outside the embedding)", tok_path, tok:vocab_size(), model_path, vocab, vocab - 1)
  end
  local rec = is_main() and P.start{out = o.out, options = o, recipe = recipe, modules = modules, identity = id,
    identity_parts = parts, inputs = {model_path, tok_path, o.general, o.domain}}
  if previous and rec then rec.first_started, rec.processes = previous.first_started or previous.started, (previous.processes or 1) + 1 end
  local data = load_data(o, tok)
  -- the base model's predictions for the token-shift measure, taken now (the model is still the base), so the
  -- base is never loaded a second time
  local shift_ref = {
    general = adept.eval.token_shift_reference(m, {table.unpack(data.eval.general, 1, o.shift_batches)}),
    domain = adept.eval.token_shift_reference(m, {table.unpack(data.eval.domain, 1, o.shift_batches)}),
  }
  local n_orig = m:num_layers()
  local base_params = param_count(m)

  -- before
  local before = {general = eval_loss(m, data.eval.general), domain = eval_loss(m, data.eval.domain)}

  -- Stage 1: importance (only when a choice uses it), then expansion
  local scores, importance_seconds
  local needs = o.placement == "importance" or o.train == "least_important" or type(o.placement) == "function"
  if needs then
    local t0 = adept.now()
    scores = layer_scores(m, data.probe, o, o.out)
    importance_seconds = adept.now() - t0
  end
  local expanded, trained_layers = {}, nil
  if o.placement ~= "none" then
    local chosen = choose_layers(o.placement, n_orig, o, scores)
    expanded = m:expand(chosen, {init = "identity"})
    o.expanded_from = chosen
  end
  if o.train == "all" then
    m:unfreeze("all")
  elseif o.train == "lora" then
    if o.placement ~= "none" then fail("train=\"lora\" adapts the base model: placement must be \"none\"") end
    m:add_lora{rank = o.lora_rank or 8, alpha = o.lora_alpha or 16, targets = o.lora_targets, seed = o.seed}
  else
    if o.train == "copies" then
      if #expanded == 0 then fail("train=\"copies\" needs a placement that expands layers") end
      trained_layers = expanded
    else
      trained_layers = choose_layers(o.train, n_orig, o, scores)
    end
    m:freeze("all")
    for _, l in ipairs(trained_layers) do m:unfreeze(layer_pattern(l)) end
  end
  local trainable = m:trainable_params()
  local total = param_count(m)

  -- TaSL: the general-probe importance of every trainable unit and the weights to return to, before training.
  -- Taken from the loaded weights, so a resumed run computes the same ones.
  local tasl, tasl_seconds
  if o.consolidate == "tasl" then
    local t0 = adept.now()
    tasl = {opts = {granularity = o.tasl_granularity, beta1 = o.tasl_beta1, beta2 = o.tasl_beta2}}
    tasl.old = adept.tasl.localize(m, data.probe, tasl.opts)
    tasl.before = adept.tasl.snapshot(m)
    tasl_seconds = adept.now() - t0
  end

  -- Stage 2 and the optimizer (created after surgery: state is keyed by name)
  local opt = adept.adamw(m, {lr = o.lr, betas = o.betas, weight_decay = o.weight_decay,
    shard_optimizer = o.shard_optimizer})
  local every = {}
  if o.lr_policy ~= "one" then
    every[o.refresh] = function(ctx)
      if ctx.step >= o.steps then return end -- a refresh after the last update would change nothing
      local units = adept.importance.units(m, data.probe)
      opt:set_lr_scales((lr_scales(o.lr_policy, units, o, m)))
    end
  end

  -- data: the domain stream (seed s starts s x steps batches in, so seeds see disjoint data), optionally mixed
  local domain_view = data.domain:train()
  domain_view:set_cursor({epoch = 0, position = 0})
  for _ = 1, o.seed * o.steps * o.grad_accum do domain_view:next_batch(o.batch_size) end
  local source, replay_stats = domain_view, nil
  if o.replay and o.replay > 0 then
    local gv = data.general:train()
    gv:set_cursor({epoch = 0, position = 0})
    for _ = 1, o.seed * o.steps * o.grad_accum do gv:next_batch(o.batch_size) end
    source, replay_stats = replay_source(domain_view, gv, o.replay, o.batch_size)
  end

  local log = o.out .. "/metrics.jsonl"
  local ckpt_every = o.checkpoint_every > 0 and o.checkpoint_every or o.steps
  local t0 = adept.now()
  local res = adept.train{model = m, optimizer = opt, data = source, steps = o.steps, batch_size = o.batch_size,
    grad_accum = o.grad_accum,
    schedule = make_schedule(o), clip = o.clip, every = every,
    eval = o.eval_every > 0 and data.eval or nil, eval_every = o.eval_every > 0 and o.eval_every or nil,
    checkpoint = {dir = o.out .. "/checkpoints", every = ckpt_every, keep = 1}, resume = true,
    log = log, progress = o.progress}
  -- training time across processes: the trainer's elapsed counts the steps of interrupted processes too
  local train_seconds = res.elapsed or (adept.now() - t0)
  local earlier_seconds = math.max(0, train_seconds - (adept.now() - t0))
  -- refreshes run at every multiple of `refresh` before the last step, whichever process ran them
  local refreshes = 0
  if o.lr_policy ~= "one" then refreshes = (math.max(0, res.steps - 1)) // o.refresh end

  -- TaSL: domain importance with the trained weights, then consolidation in place (before the after-evaluation)
  local tasl_record
  if tasl then
    local t0 = adept.now()
    -- the first probe_batches batches of the domain training stream (take ignores the cursor), read on first use
    data.probe_domain = data.probe_domain or data.domain:train():take(o.probe_batches, data.probe_size)
    local new = adept.tasl.localize(m, data.probe_domain, tasl.opts)
    local r = adept.tasl.consolidate(m, tasl.before, tasl.old, new, {normalize = o.tasl_normalize, rule = o.tasl_rule})
    tasl_seconds = tasl_seconds + adept.now() - t0
    local d = adept.tasl.defaults
    tasl_record = {granularity = o.tasl_granularity or d.granularity, beta1 = o.tasl_beta1 or d.beta1,
      beta2 = o.tasl_beta2 or d.beta2, normalize = o.tasl_normalize or d.normalize, rule = o.tasl_rule or d.rule,
      units = r.units, mean_kept = r.mean_kept, kept_all = r.kept_all, took_new = r.took_new,
      seconds = tasl_seconds, tensors = {}}
    -- per tensor: the share kept (γ) and both unit scores, so a reader can check what moved less and why
    for name, g in pairs(r.weights) do
      local function plain(v) return type(v) == "number" and v or v:table() end
      tasl_record.tensors[name] = {kept = plain(g), old = plain(tasl.old[name]), new = plain(new[name])}
    end
    write_json(o.out .. "/tasl.json", tasl_record)
    tasl.before, tasl.old = nil, nil
  end

  -- after
  local after = {general = eval_loss(m, data.eval.general), domain = eval_loss(m, data.eval.domain)}
  local shift_g = adept.eval.token_shift(shift_ref.general, m)
  local shift_d = adept.eval.token_shift(shift_ref.domain, m)
  -- before/after evals in adept.train's record format, so report.lua's curves see them
  if is_main() then
    local f = assert(io.open(log, "a"))
    f:write(adept.json.encode({type = "eval", step = 0, loss = before}), "\n")
    f:write(adept.json.encode({type = "eval", step = res.steps, loss = after}), "\n")
    f:close()
    m:save(o.out .. "/model") -- merged when adapters exist (the model keeps them)
    if m:lora() then adept.lora.save_adapter(m, o.out .. "/adapter", {base_model = o.model}) end
  end

  local summary = {
    name = o.name or o.out:match("([^/]+)$"), method = o.method, lr = o.lr, seed = o.seed,
    placement = describe(o.placement),
    train = describe(o.train), lr_policy = describe(o.lr_policy), normalize = o.lr_policy ~= "one" and o.normalize or nil,
    metric = needs and describe(o.metric) or nil, k = o.k, replay = o.replay,
    schedule = tostring(describe(make_schedule(o))), warmup = o.warmup, min_ratio = o.min_ratio,
    weight_decay = o.weight_decay, betas = o.betas, clip = o.clip, probe_batches = o.probe_batches, max_scale = o.max_scale,
    expanded_layers = expanded, expanded_from = o.expanded_from, trained_layers = trained_layers,
    lora = m:lora(), lora_targets = o.train == "lora" and (o.lora_targets or "all") or nil,
    general_before = before.general, general_after = after.general,
    domain_before = before.domain, domain_after = after.domain,
    trainable_params = trainable, total_params = total, base_params = base_params,
    trainable_share = trainable / total,
    steps = res.steps, batch_size = o.batch_size, grad_accum = o.grad_accum, processes = adept.dist.world_size(),
    seq_len = o.seq_len, tokens = res.tokens_seen,
    replay_tokens = replay_stats and replay_stats.general_tokens or 0,
    train_seconds = train_seconds, step_seconds = train_seconds / math.max(1, res.steps),
    importance_seconds = importance_seconds, tasl_seconds = tasl_seconds,
    tasl_mean_kept = tasl_record and tasl_record.mean_kept or nil, consolidate = o.consolidate,
    lr_refreshes = refreshes, refresh = o.lr_policy ~= "one" and o.refresh or nil,
    token_shift_general = shift_g.share, token_shift_domain = shift_d.share, kl_general = shift_g.kl,
    wall_time = adept.now() - t_start + earlier_seconds, threads = adept.threads and adept.threads() or nil,
    model = model_path, general = o.general, domain = o.domain,
  }
  write_json(o.out .. "/summary.json", summary)
  if is_main() then P.finish(rec, summary) end
  adept.dist.barrier() -- every rank returns once the run's files are complete
  if o.report and is_main() then
    local ok, err = pcall(adept.report, {dir = o.out})
    if not ok then adept.log("warn", "adept.cpt: report: " .. tostring(err)) end
  end
  return summary
end

-- Recipe entry point: adept.cpt.main("llama_pro" [, spec]) with command-line overrides; prints one line.
function M.main(method, spec)
  local o = M.options(method, spec)
  local s = M.run(o)
  print(("%s: general %.4f -> %.4f, domain %.4f -> %.4f, trainable %.1f%%, %.3f s/step, token shift %.3f; %s"):format(
    s.method, s.general_before, s.general_after, s.domain_before, s.domain_after, 100 * s.trainable_share,
    s.step_seconds, s.token_shift_general, o.out))
  return s, o
end

-- Runs a list of variants {label=, <option overrides>...} of `method` (each over the command-line seeds
-- list `seeds=0,1` when given), writes <out>/results.md and results.json (one row per variant, seed means)
-- and adept.report's charts over every run. `recipe_keys` names command-line keys the calling recipe reads
-- itself (they are not run options). Returns the rows.
function M.compare(method, variants, out, title, base_spec, recipe_keys)
  local own = {seeds = true}
  for _, k in ipairs(recipe_keys or {}) do own[k] = true end
  local a = adept.args or {}
  local seeds = {}
  for s in tostring(a.seeds or a.seed or 0):gmatch("[^,]+") do seeds[#seeds + 1] = math.tointeger(tonumber(s)) end
  adept.fs.mkdir_p(out)
  local rows, dirs = {}, {}
  for _, v in ipairs(variants) do
    local acc = {label = v.label, n = 0}
    for _, seed in ipairs(seeds) do
      local spec = {}
      for k, x in pairs(base_spec or {}) do spec[k] = x end
      for k, x in pairs(v) do if k ~= "label" then spec[k] = x end end
      spec.seed, spec.report = seed, false
      spec.out = ("%s/%s-s%d"):format(out, v.label, seed)
      local args = {} -- command-line overrides, except what the variant itself sets
      for k, x in pairs(a) do if not own[k] and spec[k] == nil then args[k] = x end end
      local o = M.options(v.method or method, spec, args)
      o.name = v.label
      local s = M.run(o)
      dirs[#dirs + 1] = {dir = o.out, name = ("%s s%d"):format(v.label, seed), method = v.label, lr = o.lr}
      for _, f in ipairs{"general_after", "domain_after", "trainable_share", "step_seconds", "token_shift_general"} do
        acc[f] = (acc[f] or 0) + s[f]
      end
      acc.general_before, acc.domain_before, acc.n = s.general_before, s.domain_before, acc.n + 1
      acc.layers = table.concat(s.expanded_from or s.trained_layers or {}, ",")
    end
    for _, f in ipairs{"general_after", "domain_after", "trainable_share", "step_seconds", "token_shift_general"} do
      acc[f] = acc[f] / acc.n
    end
    rows[#rows + 1] = acc
  end
  local md = {("# %s\n\nBase: general %.4f, domain %.4f. Seed means over %d seed(s).\n"):format(title,
    rows[1].general_before, rows[1].domain_before, #seeds),
    "| Variant | Layers | General after | Domain after | Δ general | Δ domain | Trainable | s/step | Token shift |",
    "|---|---|---|---|---|---|---|---|---|"}
  for _, r in ipairs(rows) do
    md[#md + 1] = ("| %s | %s | %.4f | %.4f | %+.4f | %+.4f | %.1f%% | %.3f | %.3f |"):format(r.label, r.layers,
      r.general_after, r.domain_after, r.general_after - r.general_before, r.domain_after - r.domain_before,
      100 * r.trainable_share, r.step_seconds, r.token_shift_general)
  end
  local text = table.concat(md, "\n") .. "\n"
  io.write(text)
  local f = assert(io.open(out .. "/results.md", "w")); f:write(text); f:close()
  write_json(out .. "/results.json", rows)
  local ok, err = pcall(adept.report, {dir = out, runs = dirs, title = title})
  if not ok then adept.log("warn", "adept.cpt.compare: report: " .. tostring(err)) end
  return rows
end

return M
