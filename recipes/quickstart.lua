-- Quickstart: ADEPT against full continual pretraining, from a fresh clone, in minutes on a laptop-class CPU.
--   1. corpora from Debian packages (cached): general = WordNet glosses, domain = the Maxima manual (math)
--   2. a small base model pretrained here on the general corpus (cached), with a byte-level tokenizer
--   3. ADEPT and full CPT at the same token budget, each at two learning rates
--   4. general and domain holdout loss of every run, a table, and a report with the trade-off chart
-- Overrides: model= (any HF directory or llama2.c checkpoint, then step 2 is skipped), general=, domain=,
--   lrs=1e-3,4e-3  steps=  pretrain_steps=  out=runs/quickstart  force=true (rerun finished runs)
-- Why a byte-level tokenizer: nothing to train, every string round-trips, 257 ids keep the embedding small;
-- the cost is longer sequences, which a 128-token context absorbs at this model size.
local adept = require "adept"
local cpt = require "adept.cpt"

local a = adept.args
local out = a.out or "runs/quickstart"
local t_start = adept.now()

local function exists(p) local f = io.open(p, "rb"); if f then f:close() return true end return false end

local function list_of_numbers(s, default)
  if s == nil then return default end
  if type(s) == "number" then return {s} end
  local t = {}
  for x in tostring(s):gmatch("[^,]+") do t[#t + 1] = assert(tonumber(x), "lrs: not a number: " .. x) end
  return t
end

-- 1. corpora ---------------------------------------------------------------------------------------
local general = a.general or adept.corpora.wordnet_glosses()
local domain = a.domain or adept.corpora.maxima_manual()
local general_split = a.general and "blank_line" or "line"   -- WordNet: one gloss per line

-- 2. base model ------------------------------------------------------------------------------------
local seq_len = a.seq_len or 128
local config = {architectures = {"LlamaForCausalLM"}, vocab_size = 257, hidden_size = 128, intermediate_size = 352,
  num_hidden_layers = 6, num_attention_heads = 4, num_key_value_heads = 4, max_position_embeddings = 512,
  tie_word_embeddings = true, rms_norm_eps = 1e-5, eos_token_id = 256}
local pretrain_steps = a.pretrain_steps or 600

local function pretrain_base()
  local dir = ("%s/quickstart/base-h%d-l%d-s%d-T%d"):format(adept.corpora.cache_dir(), config.hidden_size,
    config.num_hidden_layers, pretrain_steps, seq_len)
  if exists(dir .. "/.complete") then
    adept.log("info", "quickstart: reusing the base model in " .. dir)
    return dir
  end
  adept.fs.mkdir_p(dir)
  local tok = adept.tokenizer(adept.tokenizers.byte_level(dir .. "/tokenizer.json"))
  -- the same split as adept.cpt's (holdout 0.1, seed 1): the base model never sees the general holdout
  local ds = adept.dataset{path = general, tokenizer = tok, seq_len = seq_len, holdout = 0.1, seed = 1,
    doc_split = general_split}
  local m = adept.model(config, {seed = 1, init_std = 0.02})
  local opt = adept.adamw(m, {lr = 3e-3, weight_decay = 0.1})
  adept.log("info", ("quickstart: pretraining a %d-layer, %d-wide base model on %s (%d steps)"):format(
    config.num_hidden_layers, config.hidden_size, general, pretrain_steps))
  adept.train{model = m, optimizer = opt, data = ds:train(), steps = pretrain_steps, batch_size = 16,
    schedule = adept.schedule.cosine{warmup = 30, min_ratio = 0.1}, clip = 1.0,
    log = dir .. "/pretrain_metrics.jsonl"}
  m:save(dir)
  local f = assert(io.open(dir .. "/.complete", "w")); f:close()
  return dir
end

local model = a.model or pretrain_base()

-- 3. ADEPT and full CPT at the same token budget, two learning rates each ----------------------------
local lrs = list_of_numbers(a.lrs, {1e-3, 4e-3})
local spec = {model = model, general = general, domain = domain, general_doc_split = general_split,
  domain_doc_split = "blank_line", seq_len = seq_len, batch_size = 16, steps = a.steps or 200,
  refresh = a.refresh or 50, k = a.k or 2, probe_batches = 4, eval_batches = 16, report = false}
local runs, summaries = {}, {}
for _, method in ipairs{"adept", "full_cpt"} do
  for _, lr in ipairs(lrs) do
    local o = cpt.options(method, spec, {})
    o.lr, o.seed, o.force = lr, a.seed or 0, a.force or false
    o.out = ("%s/%s-lr%g"):format(out, method, lr)
    adept.log("info", ("quickstart: %s at lr %g"):format(method, lr))
    summaries[#summaries + 1] = cpt.run(o)
    runs[#runs + 1] = o.out
  end
end

-- 4. the comparison --------------------------------------------------------------------------------
print()
print(("%-10s %8s %10s %10s %10s %10s %10s %9s"):format("method", "lr", "general", "general", "domain",
  "domain", "trainable", "s/step"))
print(("%-10s %8s %10s %10s %10s %10s %10s %9s"):format("", "", "before", "after", "before", "after", "", ""))
for _, s in ipairs(summaries) do
  print(("%-10s %8g %10.4f %10.4f %10.4f %10.4f %9.1f%% %9.3f"):format(s.method, s.lr, s.general_before,
    s.general_after, s.domain_before, s.domain_after, 100 * s.trainable_share, s.step_seconds))
end
adept.report{dir = out, runs = runs, title = "Quickstart: ADEPT vs full CPT (general = WordNet, domain = Maxima)"}
print(("\nreport: %s/report.md (%.0f s in all, %d threads)"):format(out, adept.now() - t_start, adept.threads()))
