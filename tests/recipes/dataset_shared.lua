-- Recipe-level check: every shared corpus streams through adept.dataset in the adeptlua host (a prefix of
-- each, max_documents), with the stories260K tokenizer; train and holdout batches come out in range.
-- Exits 77 (skipped) when ../shared is absent.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local tok_path = shared .. "/models/stories260K/tok512.bin"
local f = io.open(tok_path, "rb")
if not f then
  print("skip: " .. tok_path .. " not found (set ADEPT_SHARED)")
  os.exit(77)
end
f:close()
local tok = adept.tokenizer and adept.tokenizer(tok_path) or tok_path
-- the glosses are one per line; the others are separated by blank lines
local corpora = {{"medquad.txt.gz", "blank_line"}, {"math_docs.txt.gz", "blank_line"},
                 {"wordnet_glosses.txt.gz", "line"}, {"tinystories_val.txt", "blank_line"}}
for _, c in ipairs(corpora) do
  local name = c[1]
  local t0 = adept.now()
  local ds = adept.dataset{path = shared .. "/corpora/" .. name, tokenizer = tok, seq_len = 128, holdout = 0.1,
                           seed = 1, max_documents = 400, cache = false, doc_split = c[2]}
  assert(ds:num_documents() == 400, name .. ": expected 400 documents, got " .. ds:num_documents())
  assert(ds:holdout():num_documents() == 40)
  local b = ds:train():next_batch(2)
  local shape = b.inputs:shape()
  assert(shape[1] == 2 and shape[2] == 128)
  local h = ds:holdout():take(1, 2)[1]
  assert(h.targets:shape()[2] == 128)
  print(string.format("%-24s %s  %.2fs", name, tostring(ds), adept.now() - t0))
end

-- a Hugging Face tokenizer.json on the same corpus: ids in range, EOS from the tokenizer's files
local gpt2 = shared .. "/tokenizers/gpt2"
if io.open(gpt2 .. "/tokenizer.json", "rb") then
  local t = adept.tokenizer(gpt2)
  local ds = adept.dataset{path = shared .. "/corpora/medquad.txt.gz", tokenizer = t, seq_len = 256, holdout = 0.1,
                           seed = 1, max_documents = 200, cache = false}
  assert(ds:num_documents() == 200 and ds:eos_id() == 50256)
  local vocab = t:vocab_size()
  local total = 0
  for i = 1, ds:num_documents() do
    local ids = ds:document(i)
    total = total + #ids + 1
    for _, id in ipairs(ids) do assert(id >= 0 and id < vocab, "id out of range") end
  end
  assert(total == ds:num_tokens())
  print(string.format("%-24s %s (gpt2)", "medquad.txt.gz", tostring(ds)))
end
