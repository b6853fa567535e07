-- Quickstart (placeholder until the ADEPT comparison lands): exercises tensors and prints what it did.
local adept = require "adept"
local t = adept.randn({64, 64}, adept.seed)
print(("adeptlua %s: randn({64, 64}) has shape {%s} and %d elements"):format(adept.version(),
  table.concat(t:shape(), ", "), t:numel()))
