-- adept.eval.generate_match: generative evaluation scored by the final answer (GSM8K style). Prompts are
-- generated greedily in batches (m:generate_batch, one KV cache per row), each generation is cut at its first
-- stop string, an answer is extracted and compared with the item's answer. Choices: docs/eval.md.
local adept = require "adept"
local fewshot = require "adept.fewshot"
local options = require "adept.options"

local M = {}

local FNAME = "generate_match"
local KEYS = {"max_new_tokens", "extract", "shots", "shots_from", "batch_size", "tokenizer", "stop", "template",
              "bos", "limit", "out"}
local DEFAULT_STOP = {"\n\n", "Question:"}
local DEFAULT_TEMPLATE = "Question: %s\nAnswer:"

local function fail(fmt, ...)
  error(("adept.eval.%s: " .. fmt):format(FNAME, ...), 3)
end

-- ---- answers ------------------------------------------------------------------------------------------------

-- A number as written, made comparable: commas dropped, a trailing "." (end of sentence) dropped, trailing zeros
-- of a fraction dropped ("7.0" -> "7", "2.50" -> "2.5"), "-0" -> "0". Anything else is returned trimmed.
function M.normalize_number(s)
  s = s:match("^%s*(.-)%s*$")
  local n = s:gsub(",", ""):gsub("%.$", "")
  if not n:match("^%-?%d+%.?%d*$") then return s end
  if n:find(".", 1, true) then n = n:gsub("0+$", ""):gsub("%.$", "") end
  if n == "-0" then n = "0" end
  return n
end

-- The default extractor: the number after GSM8K's "####" when there is one, else the last number in the text
-- (digits with optional thousands commas, an optional minus sign and decimal part), normalised; "" when the
-- text holds no number.
function M.extract_answer(text)
  local after = text:match("####%s*(%-?%d[%d,]*%.?%d*)")
  if after then return M.normalize_number(after) end
  local last
  for num in text:gmatch("%-?%d[%d,]*%.?%d*") do last = num end
  return last and M.normalize_number(last) or ""
end

-- The expected answer of an item: a number as written; a string's "#### N" part when it has one (GSM8K's
-- answer field holds the worked solution before it); else the string trimmed, normalised when it is a number.
local function expected_answer(answer)
  if math.type(answer) == "integer" then return tostring(answer) end
  if type(answer) == "number" then return M.normalize_number(("%.17g"):format(answer)) end
  local after = answer:match("####%s*(.-)%s*$")
  return M.normalize_number(after or answer)
end

-- ---- items --------------------------------------------------------------------------------------------------

local function check_item(item, where)
  if type(item) ~= "table" then fail("%s: an item must be a table {question=, answer=}, got %s", where, type(item)) end
  if type(item.question) ~= "string" then
    fail("%s: 'question' must be a string, got %s", where, type(item.question))
  end
  if type(item.answer) ~= "string" and type(item.answer) ~= "number" then
    fail("%s: 'answer' must be a string or a number, got %s", where, type(item.answer))
  end
  return {question = item.question, answer = item.answer, where = where}
end

-- Items from a JSON Lines file (one {"question": ..., "answer": ...} per line; blank lines skipped; other keys
-- ignored) or a Lua array of {question=, answer=}. limit > 0 keeps the first `limit`.
local function read_items(src, limit, what)
  local items = {}
  if type(src) == "string" then
    local f, err = io.open(src, "rb")
    if not f then fail("cannot read %s: %s", what == "items" and src or what .. " " .. src, err) end
    local line = 0
    for text in f:lines() do
      line = line + 1
      if text:match("%S") then
        local ok, obj = pcall(adept.json.decode, text)
        if not ok then f:close(); fail("%s:%d: not JSON: %s", src, line, tostring(obj)) end
        local ok2, item = pcall(check_item, obj, ("%s:%d"):format(src, line))
        if not ok2 then f:close(); error(item, 0) end
        items[#items + 1] = item
        if limit > 0 and #items >= limit then break end
      end
    end
    f:close()
  elseif type(src) == "table" then
    for i, obj in ipairs(src) do
      items[#items + 1] = check_item(obj, ("%s[%d]"):format(what, i))
      if limit > 0 and #items >= limit then break end
    end
  else
    fail("%s must be a JSON Lines path or an array of {question=, answer=}, got %s", what, type(src))
  end
  return items
end

-- ---- generation ---------------------------------------------------------------------------------------------

local function is_tokenizer(t)
  local ok, enc = pcall(function() return t.encode end)
  return ok and type(enc) == "function"
end

local function ids_of(tok, text, bos)
  local ids = tok:encode(text, {bos = bos, eos = false})
  if type(ids) == "userdata" then ids = ids:table() end
  return ids
end

-- The text before the first stop string (the whole text when none occurs).
local function cut_at_stop(text, stops)
  local cut = #text + 1
  for _, s in ipairs(stops) do
    local at = text:find(s, 1, true)
    if at and at < cut then cut = at end
  end
  return text:sub(1, cut - 1)
end

local function write_jsonl(path, records)
  local f, err = io.open(path, "wb")
  if not f then fail("cannot write %s: %s", path, err) end
  for _, r in ipairs(records) do f:write(adept.json.encode(r), "\n") end
  f:close()
end

-- generate_match(m, [tok,] items [, opts]) -> {accuracy=, correct=, n=, excluded=, shots=, records={...}}
function M.generate_match(m, a2, a3, a4)
  local tok, items_src, opts
  if is_tokenizer(a2) then tok, items_src, opts = a2, a3, a4
  else items_src, opts = a2, a3 end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d to 'generate_match' (options table expected, got %s)"):format(tok and 4 or 3,
      type(opts)), 2)
  end
  opts = opts or {}
  options.check_keys(opts, KEYS, "adept.eval.generate_match", 2)
  local okm, lf = pcall(function() return m.generate_batch end)
  if type(m) ~= "userdata" or not okm or type(lf) ~= "function" then
    error(("bad argument #1 to 'generate_match' (model expected, got %s)"):format(type(m)), 2)
  end
  if tok and opts.tokenizer ~= nil then fail("the tokenizer is given twice (argument 2 and tokenizer=)") end
  tok = tok or opts.tokenizer
  if tok == nil then fail("a tokenizer is needed: pass it as argument 2 or as tokenizer=") end
  if not is_tokenizer(tok) then fail("tokenizer= must be a tokenizer (with encode and decode), got %s", type(tok)) end

  local function pos_int(name, default)
    local v = opts[name]
    if v == nil then return default end
    if math.type(v) ~= "integer" or v < 1 then fail("%s must be a positive integer, got %s", name, tostring(v)) end
    return v
  end
  local max_new = pos_int("max_new_tokens", 256)
  local batch_size = pos_int("batch_size", 8)
  local limit = pos_int("limit", 0)
  local shots = fewshot.count(opts.shots, FNAME)
  local extract = opts.extract or M.extract_answer
  if type(extract) ~= "function" then fail("extract must be a function(text) -> string, got %s", type(extract)) end
  local template = opts.template or DEFAULT_TEMPLATE
  if type(template) ~= "string" then fail("template must be a string, got %s", type(template)) end
  local stops = opts.stop or DEFAULT_STOP
  if type(stops) ~= "table" then fail("stop must be an array of strings, got %s", type(stops)) end
  for i, s in ipairs(stops) do
    if type(s) ~= "string" or s == "" then fail("stop[%d] must be a non-empty string", i) end
  end
  if opts.out ~= nil and type(opts.out) ~= "string" then fail("out must be a path, got %s", type(opts.out)) end

  local all = read_items(items_src, limit, "items")
  local pool = opts.shots_from ~= nil and read_items(opts.shots_from, 0, "shots_from") or nil
  local exemplars, scored, excluded = fewshot.split(all, shots, pool, FNAME)
  if #scored == 0 then fail("no items to score (%d read, %d used as exemplars or excluded)", #all, #all - #scored) end
  local function render(item)
    local ok, s = pcall(string.format, template, item.question)
    if not ok then fail("template: %s", s) end
    return s
  end
  local prefix = fewshot.prefix(exemplars, render, function(e) return tostring(e.answer) end)

  local native = type(tok) == "userdata" -- the engine can decode and stop rows early on the stop strings
  local max_pos = m.config.max_position_embeddings
  local records, correct = {}, 0
  for b0 = 1, #scored, batch_size do
    local prompts, texts = {}, {}
    for i = b0, math.min(#scored, b0 + batch_size - 1) do
      local text = prefix .. render(scored[i])
      local ids = ids_of(tok, text, opts.bos)
      if #ids == 0 then fail("%s: the prompt encodes to no tokens (use a tokenizer with a BOS id or bos=true)",
                             scored[i].where) end
      if max_pos and max_pos > 0 and #ids + max_new > max_pos then
        fail("%s: the prompt is %d tokens; with max_new_tokens = %d it exceeds max_position_embeddings %d "
             .. "(use fewer shots or a smaller max_new_tokens)", scored[i].where, #ids, max_new, max_pos)
      end
      prompts[#prompts + 1], texts[#texts + 1] = ids, text
    end
    local gen = m:generate_batch(prompts, {max_tokens = max_new, stop_strings = native and stops or nil,
                                           tokenizer = native and tok or nil})
    for j, ids in ipairs(gen) do
      local item = scored[b0 + j - 1]
      local generation = cut_at_stop(tok:decode(ids, {skip_special = true}), stops)
      local got = extract(generation)
      if got ~= nil and type(got) ~= "string" then
        fail("%s: extract returned a %s; it must return a string (or nil for no answer)", item.where, type(got))
      end
      local want = expected_answer(item.answer)
      local ok = got == want
      if ok then correct = correct + 1 end
      records[#records + 1] = {prompt = texts[j], generation = generation, extracted = got or "",
                               expected = want, correct = ok, item = item.where}
    end
  end
  if opts.out then write_jsonl(opts.out, records) end
  return {accuracy = correct / #records, correct = correct, n = #records, excluded = excluded, shots = shots,
          records = records}
end

return M
