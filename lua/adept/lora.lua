-- PEFT adapter directories for a model with LoRA adapters (m:add_lora, docs/lora.md):
--   adept.lora.save_adapter(m, dir [, {base_model = "name or path"}]) writes adapter_config.json and
--     adapter_model.safetensors with PEFT's tensor names (base_model.model.<row name>), f32;
--   adept.lora.load_adapter(m, dir [, {seed = 0}]) adds the adapters such a directory describes to a base model
--     (m:add_lora with its r, lora_alpha, target_modules and the layers its tensors name) and sets their values.
-- m:save(dir) / adept.save writes the merged HF directory (the adapters folded into the written weights).
local adept = require "adept"
local options = require "adept.options"

local M = {}

local PEFT_PREFIX = "base_model.model."
local TARGET_ORDER = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

local function adapter_rows(m)
  local rows = {}
  for _, p in ipairs(m:params()) do
    if p.kind == "lora_A" or p.kind == "lora_B" then rows[#rows + 1] = p end
  end
  return rows
end

function M.save_adapter(m, dir, opt)
  opt = opt or {}
  options.check_keys(opt, {base_model = true}, "adept.lora.save_adapter")
  local lora = m:lora()
  if not lora then error("adept.lora.save_adapter: the model has no LoRA adapters (m:add_lora first)", 2) end
  local tensors, targets, seen = {}, {}, {}
  for _, p in ipairs(adapter_rows(m)) do
    tensors[PEFT_PREFIX .. p.name] = m:param(p.name)
    if not seen[p.target] then seen[p.target] = true end
  end
  for _, t in ipairs(TARGET_ORDER) do if seen[t] then targets[#targets + 1] = t end end
  local config = {
    peft_type = "LORA", task_type = "CAUSAL_LM", r = lora.rank, lora_alpha = lora.alpha, lora_dropout = 0.0,
    target_modules = targets, bias = "none", fan_in_fan_out = false, inference_mode = true,
    base_model_name_or_path = opt.base_model,
  }
  adept.fs.mkdir_p(dir)
  local f = assert(io.open(dir .. "/adapter_config.json", "w"))
  f:write(adept.json.encode(config), "\n")
  f:close()
  adept.save_tensors(dir .. "/adapter_model.safetensors", tensors, {format = "pt"})
  return dir
end

function M.load_adapter(m, dir, opt)
  opt = opt or {}
  options.check_keys(opt, {seed = true}, "adept.lora.load_adapter")
  local f, err = io.open(dir .. "/adapter_config.json")
  if not f then error("adept.lora.load_adapter: " .. tostring(err), 2) end
  local config = adept.json.decode(f:read("a"))
  f:close()
  local where = dir .. "/adapter_config.json"
  if config.peft_type ~= "LORA" then
    error(("adept.lora.load_adapter: %s: peft_type %s is not LORA"):format(where, tostring(config.peft_type)), 2)
  end
  if config.bias and config.bias ~= "none" then
    error(("adept.lora.load_adapter: %s: bias %q is not supported (only \"none\")"):format(where, config.bias), 2)
  end
  if config.use_rslora or config.use_dora then
    error(("adept.lora.load_adapter: %s: rsLoRA / DoRA adapters are not supported"):format(where), 2)
  end
  local tensors = adept.load_tensors(dir .. "/adapter_model.safetensors")
  local layers, seen_layer = {}, {}
  for name in pairs(tensors) do
    local l = name:match("%.layers%.(%d+)%.")
    if not l or name:sub(1, #PEFT_PREFIX) ~= PEFT_PREFIX then
      error(("adept.lora.load_adapter: %s/adapter_model.safetensors: unexpected tensor %s"):format(dir, name), 2)
    end
    l = tonumber(l)
    if not seen_layer[l] then seen_layer[l] = true; layers[#layers + 1] = l end
  end
  table.sort(layers)
  m:add_lora{rank = config.r, alpha = config.lora_alpha, dropout = config.lora_dropout or 0,
             targets = config.target_modules, layers = layers, seed = opt.seed}
  local expected = {}
  for _, p in ipairs(adapter_rows(m)) do expected[PEFT_PREFIX .. p.name] = p.name end
  for name, t in pairs(tensors) do
    local row = expected[name]
    if not row then
      error(("adept.lora.load_adapter: %s has %s, which the model's adapters do not"):format(dir, name), 2)
    end
    m:set_param(row, t)
    expected[name] = nil
  end
  local missing = next(expected)
  if missing then error(("adept.lora.load_adapter: %s lacks %s"):format(dir, missing), 2) end
  return m
end

return M
