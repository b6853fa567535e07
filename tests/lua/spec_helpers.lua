-- Shared helpers for the busted specs: locating the built binary, running commands, temp files,
-- and a tensor-aware near-equality assertion.
local M = {}

function M.adeptlua()
  return assert(os.getenv("ADEPTLUA"), "ADEPTLUA is not set: run the specs through ctest (make test)")
end

-- Runs a shell command; returns its combined output, success, exit code.
function M.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok == true, code
end

function M.tmpfile(contents, suffix)
  local name = os.tmpname() .. (suffix or ".lua")
  local f = assert(io.open(name, "wb"))
  f:write(contents)
  f:close()
  return name
end

function M.shared(path)
  local root = os.getenv("ADEPT_SHARED") or "../shared"
  local full = root .. "/" .. path
  local f = io.open(full, "rb")
  if not f then return nil end
  f:close()
  return full
end

-- Largest absolute difference between two tensors (or a tensor and a nested Lua table).
function M.max_abs_diff(a, b)
  local ta = type(a) == "table" and a or a:table()
  local tb = type(b) == "table" and b or b:table()
  local worst = 0
  local function walk(x, y)
    if type(x) == "table" then
      assert(type(y) == "table" and #x == #y, "shapes differ")
      for i = 1, #x do walk(x[i], y[i]) end
    else
      worst = math.max(worst, math.abs(x - y))
    end
  end
  walk(ta, tb)
  return worst
end

-- A tiny GQA model (3 layers, width 16, vocabulary 23) and a batch for it, for specs of the model API.
M.TINY_CONFIG = {vocab_size = 23, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 3,
                 num_attention_heads = 4, num_key_value_heads = 2, rms_norm_eps = 1e-5}
M.TINY_BATCH = {{1, 5, 7, 2, 9, 4, 3}, {8, 8, 1, 0, 22, 5, 6}}

function M.tiny_model(extra, seed)
  local cfg = {}
  for k, v in pairs(M.TINY_CONFIG) do cfg[k] = v end
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return require("adept").model(cfg, {seed = seed or 3, init_std = 0.3})
end

return M
