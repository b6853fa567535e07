-- Times adept tokenizers on a text file split into documents at blank lines: MB/s with one thread and with all
-- threads (encode_batch). Usage: adeptlua bench.lua tok=PATH text=FILE [threads=N]
local adept = require "adept"
local A = adept.args
local tok = adept.tokenizer(A.tok)
local f = assert(io.open(A.text, "rb"))
local data = f:read("a")
f:close()
local docs = {}
for doc in (data .. "\n\n"):gmatch("(.-)\n\n+") do
  if #doc > 0 then docs[#docs + 1] = doc end
end
local function run(threads)
  adept.threads(threads)
  local t0, c0 = adept.now(), os.clock()
  local out = tok:encode_batch(docs, {bos = false, eos = false})
  local dt, cpu = adept.now() - t0, os.clock() - c0
  local ntok = 0
  for _, ids in ipairs(out) do ntok = ntok + #ids end
  return dt, ntok, cpu
end
run(1) -- warm the caches the same way for both measurements
local all = A.threads or 0
for _, th in ipairs{1, all} do
  local dt, ntok, cpu = run(th)
  -- CPU seconds too: on a shared machine the wall clock also counts time spent waiting for a core
  print(string.format("adeptlua threads=%d: %.1f MB in %.2f s = %.1f MB/s; %.2f CPU s = %.1f MB per CPU-second " ..
    "(%d tokens, %d docs)", adept.threads(), #data / 1e6, dt, #data / 1e6 / dt, cpu, #data / 1e6 / cpu, ntok, #docs))
end
