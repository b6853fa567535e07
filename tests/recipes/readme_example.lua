-- The README's recipe example runs as written, on the shared stories260K model (skipped without ../shared).
local adept = require "adept"
local source = os.getenv("ADEPT_SOURCE") or "."
local shared = os.getenv("ADEPT_SHARED") or "../shared"
if not io.open(shared .. "/models/stories260K/stories260K.bin", "rb") then
  print("skipped: " .. shared .. "/models/stories260K not found")
  os.exit(77)
end
local readme = assert(io.open(source .. "/README.md", "rb")):read("a")
local example = assert(readme:match("## A recipe\n+```lua\n(.-)```"), "README.md has no recipe example")
adept.args.model = shared .. "/models/stories260K"
adept.args.general = shared .. "/corpora/tinystories_val.txt"
adept.args.k = 2
local printed = {}
local real_print = print
print = function(...) printed[#printed + 1] = table.concat({...}, "\t"); real_print(...) end
assert(load(example, "=README.md example"))()
print = real_print
local line = assert(printed[#printed], "the example printed nothing")
local copies, trainable = line:match("^expanded ([%d,]+); (%d+) trainable parameters$")
assert(copies, "unexpected output: " .. line)
-- two copies of a 5-layer model with d=64, FFN 172, 4 KV heads of 8: every tensor of a layer, twice
local per_layer = 2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 64 * 172
assert(tonumber(trainable) == 2 * per_layer, ("trainable %s, expected %d"):format(trainable, 2 * per_layer))
real_print("1 passed, 0 failed")
