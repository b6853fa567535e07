-- Tokenizers the project builds itself. byte_level() writes a Hugging Face tokenizer.json whose vocabulary
-- is the 256 bytes (GPT-2's byte-to-character map, no merges) plus <|endoftext|>: nothing to train, every
-- string round-trips, and transformers/tokenizers load the file as it is. Used by the quickstart.
local adept = require "adept"

local M = {}

-- GPT-2's byte -> printable character map: printable Latin-1 bytes stand for themselves, the other 68
-- bytes take the code points from U+0100 upwards in byte order.
local function byte_to_unicode()
  local map, extra = {}, 0
  for b = 0, 255 do
    local printable = (b >= 33 and b <= 126) or (b >= 161 and b <= 172) or (b >= 174 and b <= 255)
    if printable then
      map[b] = utf8.char(b)
    else
      map[b] = utf8.char(256 + extra)
      extra = extra + 1
    end
  end
  return map
end

M.EOS = "<|endoftext|>"

-- Writes the tokenizer.json to `path` (creating nothing else) and returns the path.
function M.byte_level(path)
  local map = byte_to_unicode()
  local vocab = {}
  for b = 0, 255 do vocab[map[b]] = b end
  vocab[M.EOS] = 256
  local byte_level = {type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false}
  local spec = {
    version = "1.0",
    truncation = adept.json.null,
    padding = adept.json.null,
    added_tokens = {{id = 256, content = M.EOS, single_word = false, lstrip = false, rstrip = false,
                     normalized = false, special = true}},
    normalizer = adept.json.null,
    pre_tokenizer = byte_level,
    post_processor = adept.json.null,
    decoder = byte_level,
    model = {type = "BPE", dropout = adept.json.null, unk_token = adept.json.null,
             continuing_subword_prefix = adept.json.null, end_of_word_suffix = adept.json.null,
             fuse_unk = false, byte_fallback = false, vocab = vocab, merges = adept.json.empty_array},
  }
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(adept.json.encode(spec), "\n")
  f:close()
  assert(os.rename(tmp, path))
  return path
end

return M
