-- adept.probe{text = ..., instructions = ..., mix = 0.5, batches = 8}: a general probe that mixes plain text
-- with instruction items, as the official ADEPT code does: its loss is
--   mix * L_text + (1 - mix) * L_instructions,
-- each part's loss the token-weighted mean NLL of its own batches (instruction rows count only response tokens).
-- Every importance measurement (adept.importance.layers with any metric, adept.importance.units) accepts it;
-- see docs/adept.md for how each metric combines the parts. A part whose weight is 0 is never evaluated, so
-- mix = 1 is exactly the text-only probe and mix = 0 exactly the instruction-only one.
-- combine = "loss" (default): gradient metrics and units use the gradient of the mixed loss; "scores": every
-- metric and units score each part on its own and mix the scores (the official code's units: 0.5 I_pt + 0.5 I_sft).
local M = {}

local PROBE_MT = {__name = "adept.Probe"}
PROBE_MT.__index = PROBE_MT

-- An array of batches, or anything with :take (a dataset, a split, an instruction dataset): its first n batches.
local function resolve(part, value, n)
  if type(value) == "table" and getmetatable(value) == nil and value[1] ~= nil then return value end
  local ok, take = pcall(function() return value.take end)
  if ok and type(take) == "function" then
    local batches = value:take(n)
    if #batches > 0 then return batches end
    error(("adept.probe: '%s' holds no batches"):format(part), 3)
  end
  error(("adept.probe: '%s' must be an array of batches or a dataset, got %s"):format(part, type(value)), 3)
end

local function new(opts)
  if type(opts) ~= "table" then error("adept.probe: expected an option table {text =, instructions =, mix =}", 2) end
  require("adept.options").check_keys(opts, {"text", "instructions", "mix", "batches", "combine"}, "adept.probe")
  local combine = opts.combine or "loss"
  if combine ~= "loss" and combine ~= "scores" then
    error(('adept.probe: \'combine\' must be "loss" or "scores", got %s'):format(tostring(combine)), 2)
  end
  if opts.text == nil or opts.instructions == nil then
    error("adept.probe: both 'text' and 'instructions' are required (a dataset or an array of batches each)", 2)
  end
  local mix = opts.mix == nil and 0.5 or opts.mix
  if type(mix) ~= "number" or not (mix >= 0 and mix <= 1) then
    error(("adept.probe: 'mix' must be a number in [0, 1], got %s"):format(tostring(mix)), 2)
  end
  local n = opts.batches or 8
  if math.type(n) ~= "integer" or n < 1 then
    error(("adept.probe: 'batches' must be a positive integer, got %s"):format(tostring(n)), 2)
  end
  local p = setmetatable({mix = mix, combine = combine, parts = {
    {name = "text", weight = mix, batches = resolve("text", opts.text, n)},
    {name = "instructions", weight = 1 - mix, batches = resolve("instructions", opts.instructions, n)}}}, PROBE_MT)
  return p
end

-- The parts that count (weight > 0), in order: text, instructions.
function PROBE_MT:active_parts()
  local out = {}
  for _, part in ipairs(self.parts) do
    if part.weight > 0 then out[#out + 1] = part end
  end
  return out
end

function PROBE_MT:__tostring()
  return ("adept.Probe(mix %g: %d text batches, %d instruction batches)"):format(
    self.mix, #self.parts[1].batches, #self.parts[2].batches)
end

function M.is_probe(x) return getmetatable(x) == PROBE_MT end

return setmetatable(M, {__call = function(_, opts) return new(opts) end})
