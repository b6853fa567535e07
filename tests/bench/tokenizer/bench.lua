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
  local t0 = adept.now()
  local out = tok:encode_batch(docs, {bos = false, eos = false})
  local dt = adept.now() - t0
  local ntok = 0
  for _, ids in ipairs(out) do ntok = ntok + #ids end
  return dt, ntok
end
run(1) -- warm the caches the same way for both measurements
local all = A.threads or 0
for _, th in ipairs{1, all} do
  local dt, ntok = run(th)
  print(string.format("adeptlua threads=%d: %.1f MB in %.2f s = %.1f MB/s (%d tokens, %d docs)", adept.threads(),
    #data / 1e6, dt, #data / 1e6 / dt, ntok, #docs))
end
