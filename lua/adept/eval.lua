-- adept.eval: held-out perplexity, multiple-choice accuracy (lm-evaluation-harness conventions) and the token-shift
-- forgetting diagnostic between a base and a tuned model. Choices are written down in docs/eval.md.
local adept = require "adept"
local K = adept._eval
local fewshot = require "adept.fewshot"
local generate = require "adept.eval_generate"

local M = {}

local function fail(fname, fmt, ...)
  error(("adept.eval.%s: " .. fmt):format(fname, ...), 3)
end

local function check_model(m, arg, fname)
  local ok, f = pcall(function() return m.logits end)
  if type(m) ~= "userdata" or not ok or type(f) ~= "function" then
    error(("bad argument #%d to '%s' (model expected, got %s)"):format(arg, fname, type(m)), 3)
  end
end

local function opts_table(opts, arg, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (options table expected, got %s)"):format(arg, fname, type(opts)), 3)
  end
  return opts
end

local function positive_int(v, name, fname)
  if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
    fail(fname, "%s must be a positive integer, got %s", name, tostring(v))
  end
  return v
end

local function is_tensor(x)
  return type(x) == "userdata" and pcall(function() return x.shape end) and type(x.shape) == "function"
end

-- The batches to evaluate: an array of batches, a single batch ({inputs=, targets=} or an ids tensor [B, T+1]),
-- or a dataset view (its first max_batches batches, default all of them, read with take: the cursor is untouched).
local function batches_of(data, opts, fname)
  local max_batches = positive_int(opts.max_batches, "max_batches", fname)
  local batch_size = positive_int(opts.batch_size, "batch_size", fname)
  local list
  if is_tensor(data) or (type(data) == "table" and data.inputs ~= nil) then
    list = {data}
  elseif type(data) == "table" and getmetatable(data) == nil then
    list = data
  else
    local ok, take = pcall(function() return data.take end)
    if not ok or type(take) ~= "function" then
      error(("bad argument #2 to '%s' (dataset or array of batches expected, got %s)"):format(fname, type(data)), 3)
    end
    local n = data.num_batches and data:num_batches(batch_size)
    if n == nil and max_batches == nil then fail(fname, "the dataset has no num_batches(); pass max_batches") end
    n = math.min(n or max_batches, max_batches or math.huge)
    return data:take(n, batch_size)
  end
  if max_batches and #list > max_batches then
    local cut = {}
    for i = 1, max_batches do cut[i] = list[i] end
    list = cut
  end
  return list
end

-- perplexity(m, data [, {max_batches=, batch_size=}]) -> {loss=, ppl=, tokens=, batches=}
-- Token-weighted: the sum of NLL over every counted target (-1 is ignored) divided by their number, so a short
-- last batch weighs by its tokens, not as a whole batch.
function M.perplexity(m, data, opts)
  check_model(m, 1, "perplexity")
  opts = opts_table(opts, 3, "perplexity")
  local batches = batches_of(data, opts, "perplexity")
  -- split_ranks: under N processes rank r evaluates batches r+1, r+1+N, ... and the sums are reduced; every rank
  -- must then call it (a collective), which is why it is asked for, not the default
  local world, rank = 1, 0
  if opts.split_ranks then world, rank = adept.dist.world_size(), adept.dist.rank() end
  local nll, tokens = 0, 0
  for i, b in ipairs(batches) do
    if (i - 1) % world == rank then
      local loss, n = m:loss(b)
      if n > 0 then
        nll = nll + loss * n
        tokens = tokens + n
      end
    end
  end
  if world > 1 then nll, tokens = table.unpack(adept.dist.sum({nll, tokens})) end
  if tokens == 0 then fail("perplexity", "no target tokens to evaluate (%d batches)", #batches) end
  local loss = nll / tokens
  return {loss = loss, ppl = math.exp(loss), tokens = tokens, batches = #batches}
end

-- Rows (nested arrays) and targets of a batch as Lua tables, for slicing into chunks.
local function batch_rows(b, fname)
  local inputs, targets
  if type(b) == "table" and b.inputs ~= nil then
    inputs = is_tensor(b.inputs) and b.inputs:table() or b.inputs
    targets = is_tensor(b.targets) and b.targets:table() or b.targets
    if type(inputs[1]) ~= "table" then inputs, targets = {inputs}, {targets} end
  else
    local ids = is_tensor(b) and b:table() or b
    if type(ids) ~= "table" then fail(fname, "a batch must be a table or an ids tensor, got %s", type(ids)) end
    if type(ids[1]) ~= "table" then ids = {ids} end
    inputs, targets = {}, {}
    for r, row in ipairs(ids) do
      inputs[r], targets[r] = {}, {}
      for t = 1, #row - 1 do inputs[r][t], targets[r][t] = row[t], row[t + 1] end
    end
  end
  return inputs, targets
end

-- token_shift(base, tuned, data [, {max_batches=, batch_size=}]) ->
--   {share=, kl=, tokens=, changed=, marginal=, shifted=}
-- share: fraction of counted positions whose top-1 (argmax) next-token prediction differs between the models;
-- kl: mean over positions of KL(p_base || p_tuned) in nats (how much of the base distribution the tuned model
-- lost); marginal / shifted: fractions whose tuned top-1 ranks 2nd-3rd / below 3rd under the base model (the
-- token-distribution-shift classes of Lin et al., "The Unlocking Spell on Base LLMs", which the ADEPT paper's
-- Fig. 5 follows). Positions are those with a target >= 0.
local REFERENCE = {} -- metatable of token_shift_reference's results

-- The chunks token_shift compares: rows of inputs and their flat targets, at most `budget` logits per chunk.
local function shift_chunks(data, opts, V, fname)
  local chunks = {}
  local budget = 1 << 24 -- logits floats per model per forward pass (64 MB), whatever B*T*V is
  for _, b in ipairs(batches_of(data, opts, fname)) do
    local inputs, targets = batch_rows(b, fname)
    local T = #inputs[1]
    local chunk = math.max(1, budget // math.max(1, T * V))
    for r0 = 1, #inputs, chunk do
      local rows, flat = {}, {}
      for r = r0, math.min(#inputs, r0 + chunk - 1) do
        rows[#rows + 1] = inputs[r]
        for t = 1, T do flat[#flat + 1] = targets[r][t] end
      end
      chunks[#chunks + 1] = {rows = rows, flat = flat}
    end
  end
  return chunks
end

-- token_shift_reference(base, data [, opts]) -> a reference holding the base model's logits over data (B x T x V
-- floats per batch), so token_shift(reference, tuned) needs no second model in memory: adept.cpt takes it before
-- training instead of loading the base twice. The comparison is bitwise the one against the base model.
function M.token_shift_reference(base, data, opts)
  check_model(base, 1, "token_shift_reference")
  opts = opts_table(opts, 3, "token_shift_reference")
  local V = base.config.vocab_size
  local chunks = shift_chunks(data, opts, V, "token_shift_reference")
  for _, c in ipairs(chunks) do c.logits = base:logits(c.rows) end
  return setmetatable({vocab = V, chunks = chunks}, REFERENCE)
end

-- Sums the shift measures over chunks; base_logits(chunk) -> logits, owned (owned ones are freed after use,
-- a reference's stay with it).
local function compare_chunks(chunks, base_logits, tuned)
  local acc = {positions = 0, changed = 0, marginal = 0, shifted = 0, kl_sum = 0}
  for _, c in ipairs(chunks) do
    local lb, owned = base_logits(c)
    local lt <close> = tuned:logits(c.rows)
    for k, v in pairs(K.token_shift(lb, lt, c.flat)) do acc[k] = acc[k] + v end
    if owned then lb:free() end
  end
  local n = acc.positions
  if n == 0 then fail("token_shift", "no target tokens to compare") end
  return {share = acc.changed / n, kl = acc.kl_sum / n, tokens = n, changed = acc.changed,
          marginal = acc.marginal / n, shifted = acc.shifted / n}
end

function M.token_shift(base, tuned, data, opts)
  if getmetatable(base) == REFERENCE then -- base logits taken before: data and opts were given then
    check_model(tuned, 2, "token_shift")
    if data ~= nil then fail("token_shift", "the data is the reference's: pass token_shift(reference, tuned)") end
    if tuned.config.vocab_size ~= base.vocab then
      fail("token_shift", "the vocabularies differ (%d in the reference, %d in the model)", base.vocab,
        tuned.config.vocab_size)
    end
    return compare_chunks(base.chunks, function(c) return c.logits, false end, tuned)
  end
  check_model(base, 1, "token_shift")
  check_model(tuned, 2, "token_shift")
  opts = opts_table(opts, 4, "token_shift")
  local V = base.config.vocab_size
  if tuned.config.vocab_size ~= V then
    fail("token_shift", "the models' vocabularies differ (%d and %d)", V, tuned.config.vocab_size)
  end
  return compare_chunks(shift_chunks(data, opts, V, "token_shift"), function(c) return base:logits(c.rows), true end,
    tuned)
end

-- ---- multiple choice ----------------------------------------------------------------------------------------

local function encode(tok, text, bos)
  local ids = tok:encode(text, {bos = bos, eos = false})
  if is_tensor(ids) then ids = ids:table() end
  return ids
end

-- The token ids of context + continuation and where the continuation starts, as lm-evaluation-harness builds
-- them: encode(context .. continuation) and take the tokens past #encode(context) as the continuation (so a
-- merge across the boundary is scored with the continuation). If that leaves nothing, the continuation is
-- encoded on its own. Trailing spaces of the context move to the continuation, as the harness does.
local function encode_pair(tok, context, continuation, bos)
  local spaces = context:match("%s*$")
  if #spaces > 0 then
    context = context:sub(1, #context - #spaces)
    continuation = spaces .. continuation
  end
  local ctx = encode(tok, context, bos)
  local whole = encode(tok, context .. continuation, bos)
  if #whole <= #ctx then
    whole = {table.unpack(ctx)}
    for _, id in ipairs(encode(tok, continuation, false)) do whole[#whole + 1] = id end
  end
  return whole, #ctx
end

-- Characters of the choice text (UTF-8 code points; bytes when not valid UTF-8), the lm-evaluation-harness
-- acc_norm denominator (Python's len of the choice, without the leading space).
local function char_len(s)
  return utf8.len(s) or #s
end

local function argmax(xs)
  local best, arg = -math.huge, 1
  for i, x in ipairs(xs) do
    if x > best then best, arg = x, i end
  end
  return arg
end

-- Summed log-likelihood of each choice's continuation tokens, one forward pass over all choices of an item.
local function score_item(m, tok, item, opts, max_len, prefix)
  local context = prefix .. (opts.template or "Question: %s\nAnswer:"):format(item.question)
  local rows, starts = {}, {}
  local T = 0
  for k, choice in ipairs(item.choices) do
    local ids, start = encode_pair(tok, context, " " .. choice, opts.bos)
    if max_len and #ids > max_len + 1 then -- keep the end: the continuation is what is scored
      local cut = #ids - (max_len + 1)
      ids = {table.unpack(ids, cut + 1)}
      start = math.max(1, start - cut)
    end
    if start < 1 then
      error("the context encodes to no tokens; use a tokenizer with a BOS id or set bos=true", 0)
    end
    rows[k], starts[k] = ids, start
    T = math.max(T, #ids - 1)
  end
  local inputs, targets = {}, {}
  for k, ids in ipairs(rows) do
    local row = {}
    for t = 1, T do
      row[t] = ids[t] or 0 -- padding after the end cannot affect earlier positions (causal)
      -- position t predicts ids[t+1]; score only continuation tokens (index > start)
      targets[#targets + 1] = (t + 1 > starts[k] and ids[t + 1]) or -1
    end
    inputs[k] = row
  end
  local logits <close> = m:logits(inputs)
  local logp, greedy = K.target_logprobs(logits, targets)
  local ll, all_greedy, ntok = {}, {}, {}
  for k = 1, #rows do
    local s, g, n = 0, true, 0
    for t = (k - 1) * T + 1, k * T do
      if targets[t] >= 0 then
        s, n = s + logp[t], n + 1
        g = g and greedy[t]
      end
    end
    ll[k], all_greedy[k], ntok[k] = s, g, n
  end
  return ll, all_greedy, ntok
end

-- choices(m, tok, path [, {limit=, details=false, bos=, template=, shots=, shots_from=}]) ->
--   {acc=, acc_norm=, n=, correct=, correct_norm=, excluded=, shots=, items={...} when details}
-- acc: the choice with the highest summed log-likelihood is the answer; acc_norm: highest log-likelihood per
-- character of the choice text (lm-evaluation-harness). Ties go to the first choice (numpy argmax).
-- shots = k: k solved exemplars "Question: ...\nAnswer: <correct choice>\n\n" before every context, from
-- shots_from (a JSON Lines path) or the first k items, which are then not scored (adept.fewshot).
function M.choices(m, tok, path, opts)
  check_model(m, 1, "choices")
  local ok_tok, enc = pcall(function() return tok.encode end)
  if not ok_tok or type(enc) ~= "function" then
    error(("bad argument #2 to 'choices' (tokenizer expected, got %s)"):format(type(tok)), 2)
  end
  if type(path) ~= "string" then
    error(("bad argument #3 to 'choices' (path of a JSON Lines file expected, got %s)"):format(type(path)), 2)
  end
  opts = opts_table(opts, 4, "choices")
  require("adept.options").check_keys(opts, {"limit", "details", "bos", "template", "shots", "shots_from"},
                                      "adept.eval.choices", 2)
  local limit = positive_int(opts.limit, "limit", "choices") or 0
  local shots = fewshot.count(opts.shots, "choices")
  local all = K.read_choices(path, limit)
  if #all == 0 then fail("choices", "%s holds no items", path) end
  local pool
  if opts.shots_from ~= nil then
    if type(opts.shots_from) ~= "string" then
      fail("choices", "shots_from must be the path of a JSON Lines file, got %s", type(opts.shots_from))
    end
    pool = K.read_choices(opts.shots_from, 0)
  end
  local exemplars, items, excluded = fewshot.split(all, shots, pool, "choices")
  if #items == 0 then fail("choices", "%s: no items left to score after %d exemplars", path, shots) end
  local template = opts.template or "Question: %s\nAnswer:"
  local prefix = fewshot.prefix(exemplars, function(e) return template:format(e.question) end,
                                function(e) return e.choices[e.answer + 1] end)
  local max_len = m.config.max_position_embeddings
  if not max_len or max_len <= 0 then max_len = nil end
  local correct, correct_norm, details = 0, 0, {}
  for i, item in ipairs(items) do
    local ok, ll, greedy, ntok = pcall(score_item, m, tok, item, opts, max_len, prefix)
    if not ok then error(("adept.eval.choices: %s:%d: %s"):format(path, item.line, tostring(ll)), 2) end
    local norm = {}
    for k, choice in ipairs(item.choices) do norm[k] = ll[k] / math.max(1, char_len(choice)) end
    local pred, pred_norm = argmax(ll) - 1, argmax(norm) - 1
    if pred == item.answer then correct = correct + 1 end
    if pred_norm == item.answer then correct_norm = correct_norm + 1 end
    if opts.details then
      details[i] = {line = item.line, answer = item.answer, pred = pred, pred_norm = pred_norm, loglik = ll,
                    loglik_norm = norm, greedy = greedy, tokens = ntok}
    end
  end
  local n = #items
  return {acc = correct / n, acc_norm = correct_norm / n, n = n, correct = correct, correct_norm = correct_norm,
          excluded = excluded, shots = shots, items = opts.details and details or nil}
end

-- generate_match(m, [tok,] items [, opts]): generative evaluation scored by the extracted final answer
-- (lua/adept/eval_generate.lua); extract_answer / normalize_number are its default extractor and normaliser.
M.generate_match = generate.generate_match
M.extract_answer = generate.extract_answer
M.normalize_number = generate.normalize_number

return M
