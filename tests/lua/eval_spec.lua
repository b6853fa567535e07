-- adept.eval: perplexity against an independent log-softmax over m:logits, multiple-choice scoring of every
-- supported JSONL layout against an independent continuation log-likelihood, file:line errors, token shift;
-- and the three on the real stories260K model, tokenizer and TinyStories holdout when ADEPT_SHARED has them.
local adept = require "adept"
local H = require "spec_helpers"
adept.log_level("warn") -- no memory-plan lines for every tiny forward pass
-- Tiny models: one thread, so OpenMP spin-waits on a loaded 2-core machine cannot stretch seconds into minutes
-- (the kernels' threaded paths are exercised by tests/parity/test_eval_kernels.py).
adept.threads(1)

local V = 41
local CFG = {vocab_size = V, hidden_size = 16, intermediate_size = 32, num_hidden_layers = 2,
             num_attention_heads = 4, num_key_value_heads = 2, rms_norm_eps = 1e-5}

local function model(seed, std)
  return adept.model(CFG, {seed = seed or 1, init_std = std or 0.4})
end

-- A character-level tokenizer: id 0 is BOS (prepended unless bos=false), every byte b maps to 1 + b % (V-1).
local tok = {}
function tok:encode(text, o)
  local ids = {}
  if not (o and o.bos == false) then ids[1] = 0 end
  for i = 1, #text do ids[#ids + 1] = 1 + text:byte(i) % (V - 1) end
  return ids
end

-- log softmax(logits row)[target], straightforwardly in Lua, from a [T, V] logits tensor.
local function log_softmax_at(lg, t, target)
  local mx = -math.huge
  for j = 1, V do mx = math.max(mx, lg:get(t, j)) end
  local s = 0
  for j = 1, V do s = s + math.exp(lg:get(t, j) - mx) end
  return lg:get(t, target + 1) - mx - math.log(s)
end

local function rand_ids(rng, n)
  local r = {}
  for i = 1, n do r[i] = rng(0, V - 1) end
  return r
end

-- A temporary JSON Lines file (os.tmpname's own file, so removing it leaves nothing behind).
local function write(lines)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return name
end

describe("adept.eval.perplexity", function()
  local seed = os.time()
  print("eval_spec seed " .. seed)
  math.randomseed(seed)
  local rng = math.random

  it("is exp of the token-weighted mean NLL computed from m:logits", function()
    local m = model(2)
    -- batches of different sizes and masked targets, so token weighting differs from a mean of batch means
    local b1 = {}
    for r = 1, 3 do b1[r] = rand_ids(rng, 9) end
    local inputs, targets = {rand_ids(rng, 6)}, {rand_ids(rng, 6)}
    targets[1][2], targets[1][5] = -1, -1
    local b2 = {inputs = adept.tensor(inputs, "i32"), targets = adept.tensor(targets, "i32")}
    local b3 = {{rand_ids(rng, 4)}}
    b3 = b3[1]
    local nll, n = 0, 0
    local function add(inp, tgt)
      local lg = m:logits(inp)
      for t = 1, #inp do
        if tgt[t] >= 0 then nll, n = nll - log_softmax_at(lg, t, tgt[t]), n + 1 end
      end
    end
    for _, row in ipairs(b1) do add({table.unpack(row, 1, 8)}, {table.unpack(row, 2, 9)}) end
    add(inputs[1], targets[1])
    add({table.unpack(b3[1], 1, 3)}, {table.unpack(b3[1], 2, 4)})
    local r = adept.eval.perplexity(m, {b1, b2, b3})
    assert.equals(n, r.tokens)
    assert.equals(3 * 8 + 4 + 3, r.tokens)
    -- batched f32 forward vs one sequence at a time: the forward's rounding bound (spec_helpers); exp(x)
    -- carries an absolute error of x into a relative one of the perplexity
    local tol = H.forward_rel_tol(CFG, 9)
    assert.near(nll / n, r.loss, tol * nll / n)
    assert.near(math.exp(nll / n), r.ppl, tol * (nll / n) * r.ppl)
    assert.equals(3, r.batches)
    -- a mean of per-batch means would differ: the weighting is by tokens
    local means = (m:loss(b1) + m:loss(b2) + m:loss(b3)) / 3
    assert.is_true(math.abs(means - r.loss) > 1e-6)
  end)

  it("reads datasets through take without moving them, honouring max_batches and batch_size", function()
    local m = model(3)
    local all = {}
    for k = 1, 5 do all[k] = {rand_ids(rng, 7), rand_ids(rng, 7)} end
    local calls = {}
    local ds = setmetatable({}, {__index = {
      num_batches = function(_, bs) calls.nb = bs; return #all end,
      take = function(_, n, bs) calls.take, calls.bs = n, bs
        local r = {}
        for k = 1, n do r[k] = all[k] end
        return r
      end}})
    local full = adept.eval.perplexity(m, ds, {batch_size = 2})
    assert.equals(5, calls.take)
    assert.equals(2, calls.bs)
    assert.equals(5 * 2 * 6, full.tokens)
    local part = adept.eval.perplexity(m, ds, {max_batches = 2})
    assert.equals(2, calls.take)
    assert.same(adept.eval.perplexity(m, {all[1], all[2]}), part)
    assert.same(part, adept.eval.perplexity(m, all, {max_batches = 2}))
  end)

  it("rejects empty holdouts and bad arguments", function()
    local m = model()
    assert.has_error(function() adept.eval.perplexity(m, {{inputs = {{1, 2}}, targets = {{-1, -1}}}}) end,
      "adept.eval.perplexity: no target tokens to evaluate (1 batches)")
    assert.has_error(function() adept.eval.perplexity("m", {}) end,
      "bad argument #1 to 'perplexity' (model expected, got string)")
    assert.has_error(function() adept.eval.perplexity(m, {}, {max_batches = 0}) end,
      "adept.eval.perplexity: max_batches must be a positive integer, got 0")
    assert.has_error(function() adept.eval.perplexity(m, 42) end,
      "bad argument #2 to 'perplexity' (dataset or array of batches expected, got number)")
  end)
end)

-- Independent scoring: context "Question: q\nAnswer:", continuation " " .. choice; with the character tokenizer
-- no token crosses the boundary, so the continuation's ids are the last #choice+1 ids.
local function expected_item(m, question, choices)
  local ll, norm = {}, {}
  for k, c in ipairs(choices) do
    local ids = tok:encode("Question: " .. question .. "\nAnswer: " .. c)
    local ncont = #c + 1
    local lg = m:logits({table.unpack(ids, 1, #ids - 1)})
    local s = 0
    for pos = #ids - ncont + 1, #ids do s = s + log_softmax_at(lg, pos - 1, ids[pos]) end
    ll[k], norm[k] = s, s / #c
  end
  local function argmax(x)
    local b = 1
    for i = 2, #x do if x[i] > x[b] then b = i end end
    return b - 1
  end
  return ll, argmax(ll), argmax(norm)
end

describe("adept.eval.choices", function()
  local layouts = {
    -- {json line, question, choices, answer}
    {'{"question": "2+2?", "choices": ["3", "4", "five"], "answer": 1}', "2+2?", {"3", "4", "five"}, 1},
    {'{"question": "sky?", "choices": ["blue", "red"], "answer": "A"}', "sky?", {"blue", "red"}, 0},
    {'{"question": "cat?", "choices": ["dog", "meow", "moo"], "answer": "moo"}', "cat?", {"dog", "meow", "moo"}, 2},
    {'{"question": "mmlu", "subject": "x", "choices": ["a", "b", "c", "d"], "answer": 3}', "mmlu",
     {"a", "b", "c", "d"}, 3},
    {'{"question": "csv", "A": "w", "B": "x", "C": "y", "D": "z", "answer": "B"}', "csv", {"w", "x", "y", "z"}, 1},
    {'{"question": "medqa", "options": {"A": "aspirin", "B": "heparin", "C": "warfarin"}, "answer_idx": "C", '
     .. '"answer": "warfarin", "meta_info": "step1"}', "medqa", {"aspirin", "heparin", "warfarin"}, 2},
    {'{"id": "arc1", "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "1"}, '
     .. '{"text": "cold", "label": "2"}, {"text": "salt water", "label": "3"}]}, "answerKey": "3"}',
     "What melts ice?", {"heat", "cold", "salt water"}, 2},
    {'{"question": "hf arc", "choices": {"text": ["p", "q"], "label": ["A", "B"]}, "answerKey": "B"}', "hf arc",
     {"p", "q"}, 1},
  }

  it("parses every layout and scores each choice by its continuation log-likelihood", function()
    local m = model(5)
    local lines = {}
    for i, l in ipairs(layouts) do lines[#lines + 1] = l[1]; if i == 3 then lines[#lines + 1] = "" end end
    local path = write(lines)
    local r = adept.eval.choices(m, tok, path, {details = true})
    os.remove(path)
    assert.equals(#layouts, r.n)
    local correct, correct_norm = 0, 0
    for i, l in ipairs(layouts) do
      local d = r.items[i]
      assert.equals(i <= 3 and i or i + 1, d.line)  -- the blank line still counts
      assert.equals(l[4], d.answer)
      local ll, pred, pred_norm = expected_item(m, l[2], l[3])
      assert.equals(#l[3], #d.loglik)
      -- batched vs one sequence: the forward's rounding bound (spec_helpers)
      for k = 1, #ll do assert.near(ll[k], d.loglik[k], H.forward_rel_tol(CFG, 64) * math.abs(ll[k])) end
      assert.equals(pred, d.pred)
      assert.equals(pred_norm, d.pred_norm)
      assert.equals(#l[3][1] + 1, d.tokens[1])
      if pred == l[4] then correct = correct + 1 end
      if pred_norm == l[4] then correct_norm = correct_norm + 1 end
    end
    assert.equals(correct / #layouts, r.acc)
    assert.equals(correct_norm / #layouts, r.acc_norm)
    path = write(lines)
    local limited = adept.eval.choices(m, tok, path, {limit = 2})
    os.remove(path)
    assert.is_nil(limited.items)
    assert.equals(2, limited.n)
  end)

  it("gives accuracy 1 to a model trained on the right answers", function()
    local items = {
      {q = "red", c = {"apple", "sky", "grass"}, a = 0},
      {q = "blue", c = {"apple", "sky", "grass"}, a = 1},
      {q = "green", c = {"apple", "sky", "grass"}, a = 2},
    }
    local lines, batch = {}, {}
    for _, it in ipairs(items) do
      lines[#lines + 1] = ('{"question": "%s", "choices": ["%s", "%s", "%s"], "answer": %d}'):format(
        it.q, it.c[1], it.c[2], it.c[3], it.a)
      local ids = tok:encode("Question: " .. it.q .. "\nAnswer: " .. it.c[it.a + 1])
      batch[#batch + 1] = ids
    end
    local T = 0
    for _, ids in ipairs(batch) do T = math.max(T, #ids) end
    local inputs, targets = {}, {}
    for r, ids in ipairs(batch) do
      inputs[r], targets[r] = {}, {}
      for t = 1, T - 1 do inputs[r][t], targets[r][t] = ids[t] or 0, ids[t + 1] or -1 end
    end
    local path = write(lines)
    local m = model(7, 0.1)
    local before = adept.eval.choices(m, tok, path)
    -- plain SGD on the correct sequences until the loss is small
    local loss, steps = nil, 0
    for _ = 1, 300 do
      steps = steps + 1
      m:zero_grad()
      loss = m:loss_and_grad({inputs = inputs, targets = targets})
      for _, name in ipairs(m:param_names()) do m:set_param(name, m:param(name) - m:grad(name) * 0.5) end
      if loss < 0.05 then break end
    end
    local after = adept.eval.choices(m, tok, path)
    os.remove(path)
    assert.is_true(loss < 0.3, "training did not converge: loss " .. loss)
    assert.equals(1, after.acc)
    assert.equals(1, after.acc_norm)
    assert.equals(3, after.correct)
    assert.equals(3, before.n)
    print(("choices before training: acc %.3f acc_norm %.3f; after %d SGD steps (loss %.3f): acc %.3f"):format(
      before.acc, before.acc_norm, steps, loss, after.acc))
  end)

  it("names the file and line of malformed items", function()
    local m = model()
    local good = layouts[1][1]
    local cases = {
      {{good, "", '{"question": "x", "choices": ["a", "b"], "answer": 1'}, ":3: invalid JSON"},
      {{good, '{"question": "x", "choices": ["a", "b"]}'}, ":2: no answer"},
      {{'{"question": "x", "choices": ["a", "b"], "answer": 2}'}, ":1: 'answer' 2 is not a 0-based index of the 2 choices"},
      {{'{"question": "x", "choices": ["a", "b"], "answer": "Z"}'}, ":1: 'answer' \"Z\" matches no choice label"},
      {{good, good, '{"question": "x", "choices": ["a", 3], "answer": 0}'}, ":3: choice 2 (choices) must be a string"},
      {{'{"choices": ["a", "b"], "answer": 0}'}, ":1: no 'question' field"},
      {{'{"question": "x", "answer": 0}'}, ":1: no choices"},
      {{'{"question": "x", "choices": ["a"], "answer": 0}'}, ":1: an item needs at least 2 choices, got 1"},
      {{'[1, 2]'}, ":1: an item must be a JSON object"},
      {{good .. ' {"a": 1}'}, ":1: text after the JSON value"},
      {{'{"question": {"stem": "s"}, "answerKey": "A"}'}, ":1: ARC 'question' object must hold 'choices'"},
    }
    for _, c in ipairs(cases) do
      local path = write(c[1])
      local ok, err = pcall(adept.eval.choices, m, tok, path)
      os.remove(path)
      assert.is_false(ok)
      assert.matches("adept.eval.choices: " .. path .. c[2], err, 1, true)
    end
    local ok, err = pcall(adept.eval.choices, m, tok, "/nonexistent/items.jsonl")
    assert.is_false(ok)
    assert.matches("/nonexistent/items.jsonl: No such file", err, 1, true)
    local empty = write({""})
    assert.has_error(function() adept.eval.choices(m, tok, empty) end,
      "adept.eval.choices: " .. empty .. " holds no items")
    os.remove(empty)
    assert.has_error(function() adept.eval.choices(m, nil, "x") end,
      "bad argument #2 to 'choices' (tokenizer expected, got nil)")
  end)
end)

-- KL(p || q) and top-1 of two [T, V] logits tensors, in Lua.
local function lua_shift(la, lb, T, mask)
  local kl, changed, n = 0, 0, 0
  for t = 1, T do
    if not mask or mask[t] >= 0 then
      local function lsm(lg)
        local mx, am = -math.huge, 1
        for j = 1, V do local x = lg:get(t, j); if x > mx then mx, am = x, j end end
        local s = 0
        for j = 1, V do s = s + math.exp(lg:get(t, j) - mx) end
        local r = {}
        for j = 1, V do r[j] = lg:get(t, j) - mx - math.log(s) end
        return r, am
      end
      local pa, aa = lsm(la)
      local pb, ab = lsm(lb)
      for j = 1, V do kl = kl + math.exp(pa[j]) * (pa[j] - pb[j]) end
      if aa ~= ab then changed = changed + 1 end
      n = n + 1
    end
  end
  return kl, changed, n
end

describe("adept.eval.token_shift", function()
  math.randomseed(11)
  local rng = math.random
  local rows = {}
  for r = 1, 3 do rows[r] = rand_ids(rng, 13) end

  it("is zero for a model against itself", function()
    local m = model(4)
    local r = adept.eval.token_shift(m, m, {rows})
    assert.equals(0, r.share)
    assert.equals(0, r.kl)
    assert.equals(3 * 12, r.tokens)
    assert.equals(0, r.marginal + r.shifted)
  end)

  it("matches an independent KL and top-1 count against a perturbed copy", function()
    local base, tuned = model(4), model(4)
    for _, name in ipairs(tuned:param_names()) do
      local p = tuned:param(name)
      tuned:set_param(name, p + adept.randn(p:shape(), 99) * 0.3)
    end
    local inputs, targets = {}, {}
    for r = 1, 3 do
      inputs[r], targets[r] = {table.unpack(rows[r], 1, 12)}, {table.unpack(rows[r], 2, 13)}
    end
    targets[2][4] = -1
    local r = adept.eval.token_shift(base, tuned, {{inputs = inputs, targets = targets}})
    local kl, changed, n = 0, 0, 0
    for i = 1, 3 do
      local a, b, c = lua_shift(base:logits(inputs[i]), tuned:logits(inputs[i]), 12, targets[i])
      kl, changed, n = kl + a, changed + b, n + c
    end
    assert.equals(35, n)
    assert.equals(n, r.tokens)
    assert.equals(changed, r.changed)
    assert.is_true(r.share > 0 and r.kl > 0)
    assert.near(changed / n, r.share, 1e-12)
    -- KL = sum p (log p - log q) from two forwards: each log-prob within the forward's bound of the log-probs'
    -- scale (<= log V + the logit range, ~ 2 log V here), and KL a sum of n such positive terms
    assert.near(kl / n, r.kl, 2 * H.forward_rel_tol(CFG, 12) * 2 * math.log(V))
    assert.near(r.share, r.marginal + r.shifted, 1e-12)
    -- the same through [B, T+1] id rows, chunked or not
    local again = adept.eval.token_shift(base, tuned, {rows}, {max_batches = 1})
    assert.equals(36, again.tokens)
  end)

  it("against a reference taken from the base equals the comparison with the base itself, bitwise", function()
    local base, tuned = model(4), model(4)
    local ref = adept.eval.token_shift_reference(base, {rows})
    for _, name in ipairs(tuned:param_names()) do
      local p = tuned:param(name)
      tuned:set_param(name, p + adept.randn(p:shape(), 7) * 0.3)
    end
    local direct = adept.eval.token_shift(base, tuned, {rows})
    local via = adept.eval.token_shift(ref, tuned)
    assert.is_true(direct.share > 0)
    assert.same(direct, via)
    assert.has_error(function() adept.eval.token_shift(ref, tuned, {rows}) end,
      "adept.eval.token_shift: the data is the reference's: pass token_shift(reference, tuned)")
  end)

  it("rejects models with different vocabularies", function()
    local other = {}
    for k, v in pairs(CFG) do other[k] = v end
    other.vocab_size = V + 1
    assert.has_error(function() adept.eval.token_shift(model(), adept.model(other), {rows}) end,
      ("adept.eval.token_shift: the models' vocabularies differ (%d and %d)"):format(V, V + 1))
  end)
end)

describe("adept._eval kernels", function()
  it("fail cleanly on out-of-range targets and non-finite logits", function()
    local lg = adept.zeros({2, 3})
    assert.has_error(function() adept._eval.target_logprobs(lg, {0, 3}) end)
    local lp, g = adept._eval.target_logprobs(lg, {2, -1})
    assert.near(-math.log(3), lp[1], 1e-12)
    assert.equals(0, lp[2])
    assert.is_false(g[1])  -- ties go to id 0
    lg:set(0 / 0, 1, 2)
    local ok, err = pcall(adept._eval.target_logprobs, lg, {0, 0})
    assert.is_false(ok)
    assert.matches("row 0 of the logits holds NaN", err, 1, true)
  end)
end)

describe("adept.eval on stories260K", function()
  local model_path = H.shared("models/stories260K/stories260K.bin")
  local tok_path = H.shared("models/stories260K/tok512.bin")
  local corpus = H.shared("corpora/tinystories_val.txt")
  if not (model_path and tok_path and corpus) then
    it("needs ADEPT_SHARED", function() pending("stories260K or tinystories_val.txt not found under ADEPT_SHARED") end)
    return
  end
  local m = adept.load(model_path)
  local tk = adept.tokenizer(tok_path)
  local cache = os.tmpname()
  local ds = adept.dataset{path = corpus, tokenizer = tk, seq_len = 64, holdout = 0.2, max_documents = 100,
                           cache_dir = cache .. ".d", progress = false}
  local h = ds:holdout()

  it("evaluates a trained model's holdout perplexity without moving the cursor", function()
    local before = h:cursor()
    local r = adept.eval.perplexity(m, h, {max_batches = 4, batch_size = 4})
    assert.same(before, h:cursor())
    local nll, n = 0, 0
    for _, b in ipairs(h:take(4, 4)) do
      local l, k = m:loss(b)
      nll, n = nll + l * k, n + k
    end
    assert.equals(n, r.tokens)
    assert.near(nll / n, r.loss, 1e-9)
    assert.is_true(r.loss < 3, "stories260K should be far below log(512) = 6.2 on TinyStories, got " .. r.loss)
  end)

  it("prefers fluent story continuations, scored as lm-evaluation-harness tokenizes them", function()
    local path = write({
      '{"question": "Once upon a time, there was a little", "choices": ["girl", "zqx blorf"], "answer": 0}',
      '{"question": "Lily and her mom went to the", "choices": ["park", "xylophone theorem"], "answer": "A"}',
      '{"question": "The dog was very", "choices": ["happy", "qqq"], "answer": "happy"}'})
    local r = adept.eval.choices(m, tk, path, {template = "%s", details = true})
    os.remove(path)
    assert.equals(1, r.acc)
    assert.equals(1, r.acc_norm)
    -- independent: the continuation is encode(context .. " girl") past #encode(context)
    local ctx = tk:encode("Once upon a time, there was a little")
    local whole = tk:encode("Once upon a time, there was a little girl")
    local lg = m:logits({table.unpack(whole, 1, #whole - 1)})
    local s = 0
    for pos = #ctx + 1, #whole do
      local mx, z = -math.huge, 0
      for j = 1, 512 do mx = math.max(mx, lg:get(pos - 1, j)) end
      for j = 1, 512 do z = z + math.exp(lg:get(pos - 1, j) - mx) end
      s = s + lg:get(pos - 1, whole[pos] + 1) - mx - math.log(z)
    end
    assert.equals(#whole - #ctx, r.items[1].tokens[1])
    -- batched vs one sequence (and Lua's log-softmax in double): the forward's bound for stories260K
    local st = {hidden_size = 64, intermediate_size = 172, num_hidden_layers = 5, vocab_size = 512}
    assert.near(s, r.items[1].loglik[1], H.forward_rel_tol(st, #whole) * math.abs(s))
  end)

  it("measures no shift against itself and some after a perturbation", function()
    local self = adept.eval.token_shift(m, m, h, {max_batches = 1, batch_size = 4})
    assert.equals(0, self.share)
    assert.equals(0, self.kl)
    local m2 = adept.load(model_path)
    for _, n in ipairs(m2:param_names()) do
      if n:match("layers%.4%.mlp") then m2:set_param(n, m2:param(n) * 1.5) end
    end
    local s = adept.eval.token_shift(m, m2, h, {max_batches = 1, batch_size = 4})
    assert.equals(self.tokens, s.tokens)
    assert.is_true(s.share > 0 and s.share < 1 and s.kl > 0)
  end)

  teardown(function()
    os.remove(cache)
    os.execute("rm -rf '" .. cache .. ".d'")
  end)
end)
