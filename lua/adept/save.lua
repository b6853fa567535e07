-- adept.save(m, dir [, opts]): the model writer the issues name (DESIGN.md; issue 15's PT-LoRA), one entry for the
-- two directories a model with adapters can be written as:
--   adept.save(m, dir [, {dtype =, ...}])              the HF directory, adapters merged into the written
--                                                       weights (m:save and its options; the model is unchanged)
--   adept.save(m, dir, {adapter = true [, base_model = "name or path"]})
--                                                       a PEFT adapter directory to put beside an unmerged base
--                                                       (adept.lora.save_adapter)
local options = require "adept.options"

return function(m, dir, opts)
  if type(dir) ~= "string" then error("adept.save: the directory must be a string, got a " .. type(dir), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("adept.save: options must be a table, got a " .. type(opts), 2) end
  opts = opts or {}
  if opts.adapter ~= nil and type(opts.adapter) ~= "boolean" then
    error("adept.save: option 'adapter' must be a boolean, got a " .. type(opts.adapter), 2)
  end
  if opts.adapter then
    options.check_keys(opts, {adapter = true, base_model = true}, "adept.save")
    return require("adept.lora").save_adapter(m, dir, {base_model = opts.base_model})
  end
  if opts.base_model ~= nil then error("adept.save: option 'base_model' goes with adapter = true", 2) end
  local rest = {}
  for k, v in pairs(opts) do if k ~= "adapter" then rest[k] = v end end
  return m:save(dir, rest)
end
