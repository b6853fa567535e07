-- Analysis of the MedQuAD demonstration (recipes/demo/medquad.lua): per method, the trade-off frontier of
-- (general, domain) held-out loss over the LR sweep, starting at the base model (LR 0), and
--   (a) the lowest domain loss reached with general loss <= base + budget (default 0.3 nats),
--   (b) the lowest general loss kept at domain loss <= a fixed target (default: the largest of the methods'
--       best domain losses, so every frontier reaches it),
-- both read off the piecewise-linear frontier (points joined in LR order, crossings interpolated), per seed,
-- then mean +- sd over seeds. Writes <root>/results.md, results.json and adept.report's charts of seed means.
-- Usage: adeptlua recipes/demo/analyze.lua [root=runs/medquad] [budget=0.3] [target=3.0]
local adept = require "adept"
local a = adept.args
local root = a.root or "runs/medquad"
local budget = a.budget or 0.3

local function read_json(path)
  local ok, v = pcall(adept.json.read, path) -- a run still being written has no summary yet
  return ok and v or nil
end

-- runs[method][seed] = {points sorted by lr}; all[method] = every summary
local runs, all, base = {}, {}, nil
local order = {}
for _, method in ipairs(adept.fs.list(root)) do
  local dir = root .. "/" .. method
  if method ~= "mean" and method ~= "report" and adept.fs.exists(dir) and not method:match("%.") then
    for _, run in ipairs(adept.fs.list(dir)) do
      local s = read_json(dir .. "/" .. run .. "/summary.json")
      if s then
        if not runs[method] then runs[method], all[method] = {}, {}; order[#order + 1] = method end
        runs[method][s.seed] = runs[method][s.seed] or {}
        table.insert(runs[method][s.seed], s)
        table.insert(all[method], s)
        base = base or {g = s.general_before, d = s.domain_before}
      end
    end
  end
end
assert(base, "no finished runs under " .. root)
table.sort(order)

local function frontier(points)
  table.sort(points, function(x, y) return x.lr < y.lr end)
  local f = {{lr = 0, g = base.g, d = base.d, shift = 0}}
  for _, s in ipairs(points) do
    f[#f + 1] = {lr = s.lr, g = s.general_after, d = s.domain_after, shift = s.token_shift_general}
  end
  return f
end

-- Minimum of `want` over the frontier where `key` <= limit (vertices, plus interpolated crossings).
local function best_within(f, key, limit, want)
  local best, at
  local function consider(p) if best == nil or p[want] < best then best, at = p[want], p end end
  for i, p in ipairs(f) do
    if p[key] <= limit then consider(p) end
    local q = f[i + 1]
    if q and (p[key] - limit) * (q[key] - limit) < 0 then
      local t = (limit - p[key]) / (q[key] - p[key])
      local x = {}
      for _, k in ipairs{"g", "d", "shift", "lr"} do x[k] = p[k] + t * (q[k] - p[k]) end
      consider(x)
    end
  end
  return best, at
end

local function mean_sd(xs)
  local n, s, ss = 0, 0, 0
  for _, x in ipairs(xs) do n, s = n + 1, s + x end
  if n == 0 then return nil end
  local m = s / n
  for _, x in ipairs(xs) do ss = ss + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(ss / (n - 1)) or 0, n
end

-- seed-mean points per (method, lr), for the chart and the default target
local means = {}
for _, method in ipairs(order) do
  local by_lr = {}
  for _, s in ipairs(all[method]) do
    by_lr[s.lr] = by_lr[s.lr] or {n = 0, g = 0, d = 0, shift = 0, share = s.trainable_share}
    local b = by_lr[s.lr]
    b.n, b.g, b.d, b.shift = b.n + 1, b.g + s.general_after, b.d + s.domain_after, b.shift + s.token_shift_general
  end
  means[method] = {}
  for lr, b in pairs(by_lr) do
    means[method][#means[method] + 1] = {lr = lr, general_after = b.g / b.n, domain_after = b.d / b.n,
      token_shift_general = b.shift / b.n, seeds = b.n, trainable_share = b.share}
  end
end
local target = a.target
if not target then
  target = -math.huge
  for _, method in ipairs(order) do
    local lo = math.huge
    for _, p in ipairs(means[method]) do lo = math.min(lo, p.domain_after) end
    target = math.max(target, lo)
  end
  target = math.ceil(target * 100) / 100
end

local rows, results = {}, {base = base, budget = budget, target = target, methods = {}}
for _, method in ipairs(order) do
  local da, gb, sh, seeds = {}, {}, {}, 0
  for _, pts in pairs(runs[method]) do
    seeds = seeds + 1
    local f = frontier(pts)
    local d, at = best_within(f, "g", base.g + budget, "d")
    da[#da + 1] = d
    sh[#sh + 1] = at.shift
    local g = best_within(f, "d", target, "g")
    if g then gb[#gb + 1] = g end
  end
  local steps, shares, lrs = {}, {}, {}
  for _, s in ipairs(all[method]) do
    steps[#steps + 1] = s.step_seconds
    shares[#shares + 1] = s.trainable_share
    lrs[s.lr] = true
  end
  local nl = 0
  for _ in pairs(lrs) do nl = nl + 1 end
  local r = {method = method, seeds = seeds, lrs = nl, runs = #all[method]}
  r.domain_at_budget, r.domain_at_budget_sd = mean_sd(da)
  r.general_at_target, r.general_at_target_sd, r.general_at_target_n = mean_sd(gb)
  r.token_shift_at_budget = mean_sd(sh)
  r.step_seconds = mean_sd(steps)
  r.trainable_share = mean_sd(shares)
  results.methods[method] = r
  rows[#rows + 1] = r
end

local function fmt(m, sd) return m and (sd and ("%.3f ± %.3f"):format(m, sd) or ("%.3f"):format(m)) or "n/a" end
local md = {}
md[#md + 1] = ("Base model: general %.4f, domain %.4f nats/token. (a) budget: general ≤ %.4f (+%.2f); (b) target: domain ≤ %.2f."):format(
  base.g, base.d, base.g + budget, budget, target)
md[#md + 1] = ""
md[#md + 1] = "| Method | Runs (LRs × seeds) | (a) domain loss at general +" .. budget .. " | (b) general loss at domain " ..
  ("%.2f"):format(target) .. " | Trainable share | Wall s/step | Token shift (general, at (a)) |"
md[#md + 1] = "|---|---|---|---|---|---|---|"
for _, r in ipairs(rows) do
  md[#md + 1] = ("| %s | %d (%d × %d) | %s | %s%s | %.1f%% | %.3f | %.3f |"):format(r.method, r.runs, r.lrs, r.seeds,
    fmt(r.domain_at_budget, r.domain_at_budget_sd), fmt(r.general_at_target, r.general_at_target_sd),
    (r.general_at_target_n and r.general_at_target_n < r.seeds) and (" (%d/%d seeds reach it)"):format(
      r.general_at_target_n, r.seeds) or "", 100 * r.trainable_share, r.step_seconds, r.token_shift_at_budget)
end
md[#md + 1] = ""
md[#md + 1] = "Seed-mean points (general after, domain after, token shift on general holdout):"
md[#md + 1] = ""
md[#md + 1] = "| Method | LR | General | Domain | Token shift | Seeds |"
md[#md + 1] = "|---|---|---|---|---|---|"
for _, method in ipairs(order) do
  table.sort(means[method], function(x, y) return x.lr < y.lr end)
  for _, p in ipairs(means[method]) do
    md[#md + 1] = ("| %s | %g | %.4f | %.4f | %.3f | %d |"):format(method, p.lr, p.general_after, p.domain_after,
      p.token_shift_general, p.seeds)
  end
end
local text = table.concat(md, "\n") .. "\n"
io.write(text)
local f = assert(io.open(root .. "/results.md", "w")); f:write(text); f:close()
f = assert(io.open(root .. "/results.json", "w")); f:write(adept.json.encode(results, {pretty = true}), "\n"); f:close()

-- adept.report over seed-mean "runs" (one summary.json each): the trade-off chart and table
local specs = {}
for _, method in ipairs(order) do
  for _, p in ipairs(means[method]) do
    local dir = ("%s/mean/%s-lr%g"):format(root, method, p.lr)
    adept.fs.mkdir_p(dir)
    local s = {name = ("%s lr=%g"):format(method, p.lr), method = method, lr = p.lr, general_before = base.g,
      domain_before = base.d, general_after = p.general_after, domain_after = p.domain_after,
      trainable_share = p.trainable_share}
    local sf = assert(io.open(dir .. "/summary.json", "w")); sf:write(adept.json.encode(s), "\n"); sf:close()
    specs[#specs + 1] = dir
  end
end
adept.report{dir = root .. "/report", runs = specs,
  title = ("stories260K on MedQuAD: seed means (%d seeds)"):format(rows[1] and rows[1].seeds or 0)}

-- the frontiers as analysed: seed means joined in LR order from the base model, the general budget as a line
local series, ylo, yhi = {}, math.huge, -math.huge
for _, method in ipairs(order) do
  local xs, ys, labels = {base.g}, {base.d}, {"base"}
  for _, p in ipairs(means[method]) do
    xs[#xs + 1], ys[#ys + 1], labels[#labels + 1] = p.general_after, p.domain_after, ("%g"):format(p.lr)
    ylo, yhi = math.min(ylo, p.domain_after), math.max(yhi, p.domain_after)
  end
  series[#series + 1] = {name = method, x = xs, y = ys, labels = method == order[1] and labels or nil, connect = true}
end
series[#series + 1] = {name = ("general budget +%.1f"):format(budget), x = {base.g + budget, base.g + budget},
  y = {ylo, base.d}, connect = true}
series[#series + 1] = {name = ("domain target %.2f"):format(target), x = {base.g, base.g + 2 * budget},
  y = {target, target}, connect = true}
adept.chart.scatter{path = root .. "/report/frontier.png", series = series, height = 600,
  title = "stories260K -> MedQuAD: LR-sweep frontiers (seed means)", xlabel = "general (TinyStories) held-out loss",
  ylabel = "domain (MedQuAD) held-out loss"}
print("report: " .. root .. "/report/report.md, frontier chart: " .. root .. "/report/frontier.png")
