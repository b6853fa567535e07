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

-- Largest absolute difference between two tensors, numbers, or nested Lua tables of them (arrays or
-- keyed by name; both sides must hold the same keys). NaN-aware: a NaN on either side makes the result NaN
-- (math.max(0, 0/0) is 0 in Lua, so a plain running maximum would hide it), and an infinity on one side only
-- makes it math.huge. Compare the result with `d <= tol`, which a NaN fails.
function M.max_abs_diff(a, b)
  local function plain(x) return (type(x) == "userdata" and x.table) and x:table() or x end
  local worst = 0
  local function walk(x, y, where)
    x, y = plain(x), plain(y)
    if type(x) == "table" then
      assert(type(y) == "table", "shapes differ at " .. where)
      for k, v in pairs(x) do
        assert(y[k] ~= nil, "key " .. tostring(k) .. " missing on the right at " .. where)
        walk(v, y[k], where .. "." .. tostring(k))
      end
      for k in pairs(y) do assert(x[k] ~= nil, "key " .. tostring(k) .. " missing on the left at " .. where) end
    else
      assert(type(x) == "number" and type(y) == "number", "not numbers at " .. where)
      local d = x == y and 0 or math.abs(x - y) -- equal infinities differ by 0, not NaN
      if d ~= d then worst = 0 / 0 elseif not (d <= worst) and worst == worst then worst = d end
    end
  end
  walk(a, b, "")
  return worst
end

-- Asserts |a - b| <= tol elementwise (tensors, numbers or nested tables); fails on any NaN.
function M.assert_close(a, b, tol, what)
  local d = M.max_abs_diff(a, b)
  assert(d <= tol, ("%s: largest difference %.6g exceeds %.6g"):format(what or "values", d, tol))
  return d
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
