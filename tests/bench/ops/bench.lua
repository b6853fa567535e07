-- The adeptlua half of tests/bench/ops/run: best-of-k milliseconds per op on n-element f32 tensors.
local n = adept.args.n or 10000000
local a, b = adept.randn({n}, 1), adept.randn({n}, 2)
local m = adept.randn({1000, n // 1000}, 3)
local function time(name, f)
  f()
  local best = math.huge
  for _ = 1, 7 do
    local t0 = adept.now()
    f()
    best = math.min(best, adept.now() - t0)
  end
  print(string.format("%s %.4f", name, best * 1e3))
end
local function freeing(f) return function() local t = f(); t:free() end end
time("sum", function() return a:sum() end)
time("max", function() return a:max() end)
time("norm", function() return a:norm() end)
time("dot", function() return a:dot(b) end)
time("add", freeing(function() return a + b end))
time("mul_scalar", freeing(function() return a * 2 end))
time("abs", freeing(function() return a:abs() end))
time("sum_dim1", freeing(function() return m:sum(1) end))
time("sum_dim2", freeing(function() return m:sum(2) end))
time("topk10", freeing(function() return (a:topk(10)) end))
time("clone", freeing(function() return a:clone() end))
