-- adept.dataset: token shards, text and JSON Lines through the Lua API; packing and -1 padding, views,
-- iterators, take, exact cursor resume, cache reuse, argument and input errors, and a shared corpus.
local adept = require "adept"
local helpers = require "spec_helpers"

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p '" .. tmp .. "'"))
local function path(name) return tmp .. "/" .. name end
local function spit(name, s)
  local f = assert(io.open(path(name), "wb"))
  f:write(s)
  f:close()
  return path(name)
end

-- The values of an int32 tensor as a flat Lua array: t:table() when the tensor bindings have it, otherwise
-- read back through a safetensors file (header length, JSON header, little-endian int32 data).
local function values(t)
  local out = {}
  if t.table then
    local function flat(x)
      if type(x) == "table" then for _, v in ipairs(x) do flat(v) end else out[#out + 1] = math.tointeger(x) end
    end
    flat(t:table())
    return out
  end
  local p = path("values.safetensors")
  adept.save_tensors(p, {t = t})
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  local n = string.unpack("<I8", s)
  local off = 8 + n
  for i = 1, t:numel() do out[i] = string.unpack("<i4", s, off + 1 + 4 * (i - 1)) end
  return out
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- documents [1 2 3] [4 5] [6 7 8 9], separated by 0
local shard = spit("pack.u16", string.pack("<" .. string.rep("I2", 11), 1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9))

-- 200 documents; document d holds tokens (d+1)*100 + k
local many do
  local parts = {}
  for d = 0, 199 do
    for k = 0, 2 + d % 11 do parts[#parts + 1] = string.pack("<I4", (d + 1) * 100 + k) end
    parts[#parts + 1] = string.pack("<I4", 0)
  end
  many = spit("many.u32", table.concat(parts))
end

describe("adept.dataset", function()
  teardown(function() os.execute("rm -rf '" .. tmp .. "'") end)

  it("packs token shards into windows with EOS between documents and -1 past the end", function()
    local ds = adept.dataset{path = shard, format = "tokens", eos = 0, seq_len = 4, holdout = 0, shuffle = false,
                             cache = false}
    assert.are.equal(3, ds:num_documents())
    assert.are.equal(0, ds:eos_id())
    assert.are.equal(12, ds:num_tokens())
    assert.are.equal(3, ds:num_windows())
    assert.are.equal(2, ds:num_batches(2))
    local got = {}
    for batch in ds:batches(2) do got[#got + 1] = batch end
    assert.are.equal(2, #got)
    assert.are.same({2, 4}, got[1].inputs:shape())
    assert.are.same({1, 4}, got[2].targets:shape())
    assert.is_true(same({1, 2, 3, 0, 4, 5, 0, 6}, values(got[1].inputs)))
    assert.is_true(same({2, 3, 0, 4, 5, 0, 6, 7}, values(got[1].targets)))
    assert.is_true(same({7, 8, 9, 0}, values(got[2].inputs)))
    assert.is_true(same({8, 9, 0, -1}, values(got[2].targets)))
    assert.are.same({epoch = 1, position = 0}, ds:cursor())
    -- a fresh pass reads the whole epoch again on its own cursor, twice the same, the view's cursor untouched
    for _ = 1, 2 do
      local rows = 0
      local first
      for batch in ds:batches(2, {fresh = true}) do
        first = first or values(batch.inputs)
        rows = rows + batch.inputs:shape()[1]
      end
      assert.are.equal(3, rows)
      assert.is_true(same({1, 2, 3, 0, 4, 5, 0, 6}, first))
    end
    assert.are.same({epoch = 1, position = 0}, ds:cursor())
    assert.is_true(same({1, 2, 3}, ds:document(1)))
    assert.matches("adept.Dataset%(all, 3 documents", tostring(ds))
  end)

  it("splits by document: train and holdout are disjoint, cover everything, and depend on the seed", function()
    local ds = adept.dataset{path = many, format = "tokens", token_dtype = "uint32", eos = 0, seq_len = 8,
                             holdout = 0.1, seed = 3, cache = false}
    local tr, ho = ds:train(), ds:holdout()
    assert.are.equal(tr, ds:train()) -- one view object, one cursor
    assert.are.equal("train", tr:split())
    assert.are.equal(20, ho:num_documents())
    assert.are.equal(180, tr:num_documents())
    local owner = {}
    for i = 1, ho:num_documents() do owner[ho:document(i)[1] // 100] = "holdout" end
    for i = 1, tr:num_documents() do
      local d = tr:document(i)[1] // 100
      assert.is_nil(owner[d])
      owner[d] = "train"
    end
    local n = 0
    for _ in pairs(owner) do n = n + 1 end
    assert.are.equal(200, n)
    local other = adept.dataset{path = many, format = "tokens", token_dtype = "uint32", eos = 0, seq_len = 8,
                                holdout = 0.1, seed = 4, cache = false}:holdout()
    local differs = false
    for i = 1, 20 do differs = differs or other:document(i)[1] ~= ho:document(i)[1] end
    assert.is_true(differs)
  end)

  it("resumes exactly from a saved cursor, and take() leaves the cursor alone", function()
    local function open()
      return adept.dataset{path = many, format = "tokens", token_dtype = "uint32", eos = 0, seq_len = 8,
                           holdout = 0.1, seed = 11, cache = false}:train()
    end
    local a = open()
    local w = a:num_windows()
    for _ = 1, (w // 4) - 2 do a:next_batch(4) end
    local saved = a:cursor()
    local cont = {}
    for i = 1, 6 do cont[i] = values(a:next_batch(4).inputs) end -- crosses into epoch 1
    assert.are.equal(1, a:cursor().epoch)
    local b = open()
    b:set_cursor(saved)
    for i = 1, 6 do assert.is_true(same(cont[i], values(b:next_batch(4).inputs))) end
    local before = b:cursor()
    local probe = b:take(3, 2)
    assert.are.equal(3, #probe)
    assert.are.same({2, 8}, probe[1].inputs:shape())
    assert.are.same(before, b:cursor())
    assert.is_true(same(values(probe[1].inputs), values(open():next_batch(2).inputs)))
    assert.has_error(function() b:set_cursor({epoch = 0, position = w + 1}) end)
    assert.has_error(function() b:set_cursor("start") end)
  end)

  it("reads text and JSON Lines with a tokenizer, caches the tokens, and reports skipped records", function()
    -- a llama2.c tokenizer.bin: <unk>, <s>, </s> and 256 byte tokens
    local parts = {string.pack("<i4", 6)}
    for i = 0, 258 do
      local s = i == 0 and "<unk>" or i == 1 and "\n<s>\n" or i == 2 and "\n</s>\n" or string.format("<0x%02X>", i - 3)
      parts[#parts + 1] = string.pack("<fi4", 0, #s) .. s
    end
    local tok = spit("tok259.bin", table.concat(parts))
    local text = spit("t.txt", "one doc\nstill one\n\nanother doc\n\n\nthird\n")
    local cache = path("cache")
    local ds = adept.dataset{path = text, tokenizer = tok, seq_len = 4, holdout = 0, cache_dir = cache}
    assert.are.equal(3, ds:num_documents())
    assert.is_false(ds:stats().cache_hit)
    assert.are.equal(3, ds:stats().tokenized_documents)
    local again = adept.dataset{path = {text}, tokenizer = tok, seq_len = 4, holdout = 0, cache_dir = cache}
    assert.is_true(again:stats().cache_hit)
    assert.are.equal(0, again:stats().tokenized_documents)
    assert.are.equal(ds:num_tokens(), again:num_tokens())

    local jl = spit("d.jsonl", '{"text": "a"}\n{"text": oops}\n{"title": "b"}\n{"text": "c"}\n')
    local ok, err = pcall(adept.dataset, {path = jl, tokenizer = tok, seq_len = 4, cache = false})
    assert.is_false(ok)
    assert.matches("adept.dataset: .*d.jsonl: line 2: invalid JSON", err)
    local sk = adept.dataset{path = jl, tokenizer = tok, seq_len = 4, holdout = 0, on_error = "skip", cache = false}
    assert.are.equal(2, sk:skipped())
    assert.are.equal(2, sk:num_documents())

    if os.execute("command -v gzip >/dev/null 2>&1") then
      assert(os.execute("gzip -c '" .. text .. "' > '" .. path("t2.txt.gz") .. "'"))
      local gz = adept.dataset{path = {path("*.gz"), text}, tokenizer = tok, seq_len = 4, holdout = 0, cache = false}
      assert.are.equal(6, gz:num_documents())
    end
  end)

  it("rejects bad arguments and missing inputs with clear errors", function()
    assert.has_error(function() adept.dataset() end)
    local ok, err = pcall(adept.dataset, {path = 3})
    assert.matches("path", err)
    ok, err = pcall(adept.dataset, {path = shard, on_error = "ignore"})
    assert.matches("on_error", err)
    ok, err = pcall(adept.dataset, {path = shard, format = "parquet"})
    assert.matches("format", err)
    ok, err = pcall(adept.dataset, {path = shard, seq_len = 0})
    assert.matches("seq_len", err)
    ok, err = pcall(adept.dataset, {path = shard, holdout = 1})
    assert.matches("holdout", err)
    ok, err = pcall(adept.dataset, {path = path("nope/*.txt"), format = "tokens"})
    assert.is_false(ok)
    assert.matches("no file matches", err)
    ok, err = pcall(adept.dataset, {path = spit("x.txt", "some text\n"), cache = false})
    assert.matches("tokenizer", err)
    local empty = spit("empty.u16", "")
    ok, err = pcall(adept.dataset, {path = empty, cache = false})
    assert.matches("no documents", err)
    local ds = adept.dataset{path = shard, format = "tokens", eos = 0, seq_len = 4, holdout = 0, cache = false}
    ds:free()
    assert.has_error(function() ds:num_tokens() end, "adept.Dataset:num_tokens: dataset was freed")
  end)

  it("streams a shared corpus (.txt.gz) with the stories260K tokenizer", function()
    local corpus = helpers.shared("corpora/medquad.txt.gz")
    local tok = helpers.shared("models/stories260K/tok512.bin")
    if not corpus or not tok then
      pending("ADEPT_SHARED corpora or tok512.bin not found")
      return
    end
    local t0 = os.clock()
    local ds = adept.dataset{path = corpus, tokenizer = adept.tokenizer and adept.tokenizer(tok) or tok,
                             seq_len = 64, holdout = 0.1, seed = 1, max_documents = 300, cache = false}
    assert.are.equal(300, ds:num_documents())
    assert.are.equal(30, ds:holdout():num_documents())
    local batch = ds:train():next_batch(4)
    assert.are.same({4, 64}, batch.inputs:shape())
    for _, v in ipairs(values(batch.inputs)) do assert.is_true(v >= 0 and v < 512) end
    assert.is_true(os.clock() - t0 < 30)
  end)
end)
