-- adept.tokenizer: loading, encode/decode, batches, tensors, look-ups, argument errors and lifecycle.
local adept = require "adept"
local helpers = require "spec_helpers"

local source = os.getenv("ADEPT_SOURCE") or "."
local BYTELEVEL = source .. "/tests/fuzz/corpus/tokenizer_json/bytelevel.json"
local METASPACE = source .. "/tests/fuzz/corpus/tokenizer_json/metaspace.json"

describe("adept.tokenizer", function()
  it("encodes and decodes a byte-level tokenizer.json", function()
    local tok = adept.tokenizer(BYTELEVEL)
    assert.equals(11, tok:vocab_size())
    -- the template puts <|end|> (9) first; "Hell"+"o", then " " as Ġ (7)
    assert.same({9, 6, 3, 7, 6, 3}, tok:encode("Hello Hello"))
    assert.same({6, 3}, tok:encode("Hello", {bos = false}))
    assert.equals("<|end|>Hello Hello", tok:decode(tok:encode("Hello Hello")))
    assert.equals("Hello Hello", tok:decode(tok:encode("Hello Hello"), {skip_special = true}))
    assert.equals(6, tok:token_to_id("Hell"))
    assert.equals("Hell", tok:id_to_token(6))
    assert.is_nil(tok:token_to_id("nope"))
    assert.is_nil(tok:id_to_token(1000))
    assert.equals(9, tok:bos_id())
    assert.matches("^%x+$", tok:digest())
  end)

  it("returns int32 tensors and decodes them", function()
    local tok = adept.tokenizer(BYTELEVEL)
    local t = tok:encode("Hello Hello", {tensor = true})
    assert.same({6}, t:shape())
    assert.equals("<|end|>Hello Hello", tok:decode(t))
  end)

  it("encode_batch equals encoding one by one", function()
    local tok = adept.tokenizer(METASPACE)
    local texts = {}
    for i = 1, 200 do texts[i] = string.rep("he ", i % 7) .. "ö" .. i end
    local all = tok:encode_batch(texts, {bos = false})
    assert.equals(#texts, #all)
    for i = 1, #texts do assert.same(tok:encode(texts[i], {bos = false}), all[i]) end
  end)

  it("never fails on invalid UTF-8", function()
    local tok = adept.tokenizer(METASPACE)
    local ids = tok:encode("\xff\xfe\xc3 he\x80")
    assert.is_true(#ids > 0)
    assert.is_string(tok:decode(ids))
  end)

  it("finds the tokenizer of a llama2.c model beside it", function()
    local model = helpers.shared("models/stories260K/stories260K.bin")
    if not model then return pending("shared stories260K absent") end
    local tok = adept.tokenizer(model)
    assert.equals(512, tok:vocab_size())
    assert.equals(1, tok:bos_id())
    assert.equals(2, tok:eos_id())
    local ids = tok:encode("Once upon a time")
    assert.equals(1, ids[1])
    assert.equals("Once upon a time", tok:decode(ids, {skip_special = true}))
  end)

  it("adds BOS/EOS as asked on the shared tokenizers", function()
    local l3 = helpers.shared("tokenizers/llama3/tokenizer.json")
    local mi = helpers.shared("tokenizers/mistral/tokenizer.json")
    if not (l3 and mi) then return pending("shared tokenizers absent") end
    local tok = adept.tokenizer(l3)
    local plain = tok:encode("Hi there")
    assert.are_not.equal(128000, plain[1]) -- Llama-3's post-processor adds nothing by default
    local both = tok:encode("Hi there", {bos = true, eos = true})
    assert.equals(128000, both[1])
    assert.equals(128001, both[#both])
    assert.equals(#plain + 2, #both)
    local m = adept.tokenizer(mi)
    assert.equals(1, m:encode("Hi")[1]) -- Mistral's template adds <s>
    assert.are_not.equal(1, m:encode("Hi", {bos = false})[1])
    assert.equals(2, m:encode("Hi", {eos = true})[#m:encode("Hi", {eos = true})])
    assert.equals("Hi there", m:decode(m:encode("Hi there"), {skip_special = true}))
  end)

  it("raises clear errors", function()
    local ok, err = pcall(adept.tokenizer, "/nonexistent/tokenizer.json")
    assert.is_false(ok)
    assert.matches("adept.tokenizer: /nonexistent/tokenizer.json", err, 1, true)
    local bad = helpers.tmpfile('{"model":{"type":"WordPiece","vocab":{}}}', ".json")
    ok, err = pcall(adept.tokenizer, bad)
    assert.is_false(ok)
    assert.matches("WordPiece", err, 1, true)
    local tok = adept.tokenizer(BYTELEVEL)
    ok, err = pcall(function() return tok:encode({}) end)
    assert.is_false(ok)
    assert.matches("adept.Tokenizer:encode: bad argument #1 (", err, 1, true)
    ok, err = pcall(tok.decode, tok, {1, "x"})
    assert.is_false(ok)
    assert.matches("element 2", err, 1, true)
    ok, err = pcall(tok.decode, tok, {100000})
    assert.is_false(ok)
    assert.matches("not in the vocabulary", err, 1, true)
    ok, err = pcall(tok.encode, tok, "x", {bos = 1})
    assert.is_false(ok)
  end)

  it("is freed once and then raises", function()
    local tok = adept.tokenizer(BYTELEVEL)
    tok:free()
    tok:free()
    assert.matches("freed", tostring(tok))
    local ok, err = pcall(tok.encode, tok, "x")
    assert.is_false(ok)
    assert.matches("tokenizer was freed", err, 1, true)
    do local t <close> = adept.tokenizer(BYTELEVEL) end
  end)
end)
