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

-- A fresh temporary directory name (not created): os.tmpname's file removed, the suffix appended.
function M.tmpdir(suffix)
  local name = os.tmpname()
  os.remove(name)
  return name .. (suffix or "_dir")
end

-- The values of a tensor in row-major order, as one flat Lua list.
function M.values(t)
  local out = {}
  local function flat(x) if type(x) == "table" then for _, v in ipairs(x) do flat(v) end else out[#out + 1] = x end end
  flat(t:table())
  return out
end

-- Whether two flat lists hold equal values (bitwise for numbers: NaN is never equal).
function M.same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
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

-- Relative rounding bound of the f32 forward of a model with config cfg on sequences of T tokens, for comparing
-- two runs of the same model that sum in other orders (another batch shape, another BLAS kernel, Lua's own
-- log-softmax over the logits). With u = 2^-24, a product summing K terms is within 2 K u of the sum of their
-- magnitudes (Higham, both orders counted); a logit passes through at most 9 products per layer (q, k, v,
-- scores, weights x v, o, gate, up, down) and the head, so errors add to (9 L + 1) * 2 K u with K the largest
-- inner size (hidden, intermediate, or T for the attention weights), plus 2 V u for the log-softmax's sum over
-- the vocabulary. RMS-normalised activations keep the magnitudes of a sum on the scale of its result, so this
-- bounds the error of a loss, NLL or log-likelihood (sums of same-signed terms) relative to its value.
function M.forward_rel_tol(cfg, T)
  local K = math.max(cfg.hidden_size, cfg.intermediate_size, T or 1)
  return ((9 * cfg.num_hidden_layers + 1) * 2 * K + 2 * cfg.vocab_size) * 2 ^ -24
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
