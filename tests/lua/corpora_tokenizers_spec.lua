-- adept.corpora (Debian-package corpora, cached) and adept.tokenizers.byte_level.
local adept = require "adept"
local helpers = require "spec_helpers"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

describe("adept.tokenizers.byte_level", function()
  it("round-trips any text, one id per byte, with <|endoftext|> as a special token", function()
    local path = adept.tokenizers.byte_level(tmpdir() .. "/tokenizer.json")
    local tok = adept.tokenizer(path)
    assert.equals(257, tok:vocab_size())
    assert.equals(256, tok:eos_id())
    local text = "Tab\tnewline\n  spaces, UTF-8: é ∫ 😀, control \1\127"
    local ids = tok:encode(text)
    assert.equals(#text, #ids)
    for i = 1, #text do assert.equals(text:byte(i), ids[i]) end
    assert.equals(text, tok:decode(ids))
    local with_eos = tok:encode("a<|endoftext|>b")
    assert.same({97, 256, 98}, with_eos)
  end)
end)

describe("adept.corpora", function()
  it("extracts WordNet glosses from an extracted package in the cache, once", function()
    local cache = tmpdir()
    local wn = cache .. "/debian/wordnet-base/usr/share/wordnet"
    assert(os.execute("mkdir -p '" .. wn .. "'"))
    local function write(name, text)
      local f = assert(io.open(wn .. "/" .. name, "wb")); f:write(text); f:close()
    end
    write("data.noun", "  1 This software and database is being provided\n" ..
      "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known  \n" ..
      "00001930 03 n 01 physical_entity 0 001 @ 00001740 n 0000 | an entity that has physical existence\n")
    write("data.verb", "00001740 29 v 04 breathe 0 | draw air into, and expel out of, the lungs; \"I can breathe better\"\n")
    write("data.adj", "")
    write("data.adv", "")
    local f = assert(io.open(cache .. "/debian/wordnet-base/.complete", "wb")); f:close()
    local path = adept.corpora.wordnet_glosses{cache = cache}
    local lines = {}
    for l in io.lines(path) do lines[#lines + 1] = l end
    assert.same({"that which is perceived or known", "an entity that has physical existence",
      "draw air into, and expel out of, the lungs; \"I can breathe better\""}, lines)
    -- a second call reuses the file even when the package is gone
    assert(os.execute("rm -rf '" .. cache .. "/debian'"))
    assert.equals(path, adept.corpora.wordnet_glosses{cache = cache})
  end)

  it("names the failing step when a package cannot be fetched", function()
    local cache = tmpdir()
    assert.has_error(function()
      adept.corpora.debian_package("no-such-package-adeptlua-test", {cache = cache})
    end)
  end)
end)
