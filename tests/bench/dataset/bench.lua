-- Measures the dataset pipeline on the shared corpora; see run.
local adept = require "adept"
local a = adept.args
local shared = os.getenv("ADEPT_SHARED")
local tok_path = a.tokenizer or (shared .. "/models/stories260K/tok512.bin")
local tok = adept.tokenizer and adept.tokenizer(tok_path) or tok_path
local paths = {shared .. "/corpora/*.txt.gz", shared .. "/corpora/*.txt"}
local function open(threads, cache)
  local t0 = adept.now()
  local ds = adept.dataset{path = paths, tokenizer = tok, seq_len = a.seq_len or 256, threads = threads,
                           cache = cache, cache_dir = a.cache_dir, progress = false}
  return ds, adept.now() - t0
end
local cores = adept.threads()
local ds1, t1 = open(1, false)
print(string.format("corpus: %s", tostring(ds1)))
local dsn, tn = open(cores, true)
local _, tc = open(cores, true)
print(string.format("build, 1 thread:   %.2f s", t1))
print(string.format("build, %d threads:  %.2f s (x%.2f)", cores, tn, t1 / tn))
print(string.format("reopen from cache: %.3f s (hashing the sources, mapping the cache)", tc))
local tr = dsn:train()
local t0, rows = adept.now(), 0
for b in tr:batches(16) do rows = rows + b.inputs:shape()[1] end
local tb = adept.now() - t0
print(string.format("one epoch of batches: %d windows in %.2f s (%.0f windows/s)", rows, tb, rows / tb))
