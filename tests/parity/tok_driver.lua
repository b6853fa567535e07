-- Parity driver for the tokenizer tests: encodes every text of a length-prefixed batch file with adeptlua and
-- writes, per text, the ids and the decoded text.
-- Usage: adeptlua tok_driver.lua tok=TOKENIZER input=IN output=OUT [flags=none]
local adept = require "adept"
local A = adept.args
local tok_path, in_path, out_path, flags = A.tok, A.input, A.output, A.flags
local tok = adept.tokenizer(tok_path)
local f = assert(io.open(in_path, "rb"))
local data = f:read("a")
f:close()
local texts, pos = {}, 1
while pos <= #data do
  local n
  n, pos = string.unpack("<I4", data, pos)
  texts[#texts + 1] = data:sub(pos, pos + n - 1)
  pos = pos + n
end
local opts = nil
if flags == "none" then opts = {bos = false, eos = false} end
local all = tok:encode_batch(texts, opts)
local out = {}
for i, ids in ipairs(all) do
  local dec = tok:decode(ids)
  out[#out + 1] = string.pack("<I4", #ids)
  for _, id in ipairs(ids) do out[#out + 1] = string.pack("<i4", id) end
  out[#out + 1] = string.pack("<s4", dec)
end
local o = assert(io.open(out_path, "wb"))
o:write(table.concat(out))
o:close()
