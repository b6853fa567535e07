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

return M
