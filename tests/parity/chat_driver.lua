-- Parity driver for the chat-template test: renders every conversation of a JSON file with adeptlua's renderer
-- and writes the texts (and the learnable segments) as JSON.
-- Usage: adeptlua chat_driver.lua config=tokenizer_config.json input=IN.json output=OUT.json
local adept = require "adept"
local A = adept.args
local f = assert(io.open(A.input, "rb"))
local conversations = adept.json.decode(f:read("a"))
f:close()
local out = {}
for i, messages in ipairs(conversations) do
  local text, segments = adept.chat_render(A.config, messages)
  local learn = {}
  for _, s in ipairs(segments) do if s.target then learn[#learn + 1] = s.text end end
  out[i] = {text = text, learn = learn}
end
local o = assert(io.open(A.output, "wb"))
o:write(adept.json.encode(out))
o:close()
