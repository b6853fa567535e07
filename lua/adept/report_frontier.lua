-- Trade-off frontiers of LR sweeps (adept.report.frontier, adept.report.sweep): per method, the (general, domain)
-- held-out losses of its runs joined in LR order from the base model, and two numbers read off that curve:
--   (a) domain_at_budget: the lowest domain loss reached with general loss <= base + budget (default 0.3 nats),
--   (b) general_at_target: the lowest general loss kept at domain loss <= target (default: the largest of the
--       methods' best seed-mean domain losses, rounded up to 0.01, so every frontier reaches it),
-- per seed (vertices plus interpolated crossings of the piecewise-linear frontier), then mean ± sd over seeds.
-- Moved from recipes/demo/analyze.lua, which computed the MedQuAD results of docs/results.md this way.
local adept = require "adept"

local M = {}

local function isnum(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- Mean, sample standard deviation (0 for one value) and count; nil for no values.
function M.mean_sd(xs)
  local n, s = 0, 0
  for _, x in ipairs(xs) do n, s = n + 1, s + x end
  if n == 0 then return nil end
  local m, ss = s / n, 0
  for _, x in ipairs(xs) do ss = ss + (x - m) ^ 2 end
  return m, n > 1 and math.sqrt(ss / (n - 1)) or 0, n
end

-- One seed's frontier: the base model (LR 0), then its runs in LR order.
local function frontier_of(points, base)
  table.sort(points, function(x, y) return x.lr < y.lr end)
  local f = {{lr = 0, g = base.g, d = base.d, shift = 0}}
  for _, s in ipairs(points) do
    f[#f + 1] = {lr = s.lr, g = s.general_after, d = s.domain_after, shift = s.token_shift_general or 0}
  end
  return f
end

-- Minimum of `want` over the frontier where `key` <= limit (vertices, plus interpolated crossings).
function M.best_within(f, key, limit, want)
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

-- summaries: run summaries (summary.json tables) with method, lr, seed, general/domain before/after.
-- Returns {base=, budget=, target=, methods={method -> row}, rows={row...} (methods sorted), means={method -> points}}.
function M.frontier(summaries, opts)
  opts = opts or {}
  require("adept.options").check_keys(opts, {"budget", "target"}, "adept.report.frontier")
  local budget = opts.budget or 0.3
  local runs, all, order, base = {}, {}, {}, nil
  for _, s in ipairs(summaries) do
    if isnum(s.general_after) and isnum(s.domain_after) and isnum(s.lr) then
      local method = tostring(s.method or "run")
      if not runs[method] then runs[method], all[method] = {}, {}; order[#order + 1] = method end
      local seed = s.seed or 0
      runs[method][seed] = runs[method][seed] or {}
      table.insert(runs[method][seed], s)
      table.insert(all[method], s)
      base = base or {g = s.general_before, d = s.domain_before}
    end
  end
  if not base then error("adept.report.frontier: no finished runs with general/domain losses and an lr", 2) end
  table.sort(order)
  -- seed-mean points per (method, lr), with the sd over seeds, for the chart, the table and the default target
  local means = {}
  for _, method in ipairs(order) do
    local by_lr, lrs = {}, {}
    for _, s in ipairs(all[method]) do
      if not by_lr[s.lr] then by_lr[s.lr] = {g = {}, d = {}, shift = {}, share = s.trainable_share}; lrs[#lrs + 1] = s.lr end
      local b = by_lr[s.lr]
      b.g[#b.g + 1], b.d[#b.d + 1] = s.general_after, s.domain_after
      b.shift[#b.shift + 1] = s.token_shift_general or 0
    end
    table.sort(lrs)
    means[method] = {}
    for _, lr in ipairs(lrs) do
      local b = by_lr[lr]
      local g, g_sd, n = M.mean_sd(b.g)
      local d, d_sd = M.mean_sd(b.d)
      means[method][#means[method] + 1] = {lr = lr, general_after = g, general_sd = g_sd, domain_after = d,
        domain_sd = d_sd, token_shift_general = (M.mean_sd(b.shift)), seeds = n, trainable_share = b.share}
    end
  end
  local target = opts.target
  if not target then
    target = -math.huge
    for _, method in ipairs(order) do
      local lo = math.huge
      for _, p in ipairs(means[method]) do lo = math.min(lo, p.domain_after) end
      target = math.max(target, lo)
    end
    target = math.ceil(target * 100) / 100
  end
  local result = {base = base, budget = budget, target = target, methods = {}, rows = {}, means = means}
  for _, method in ipairs(order) do
    local da, gb, sh, seeds = {}, {}, {}, 0
    local seed_list = {}
    for seed in pairs(runs[method]) do seed_list[#seed_list + 1] = seed end
    table.sort(seed_list)
    for _, seed in ipairs(seed_list) do
      seeds = seeds + 1
      local f = frontier_of(runs[method][seed], base)
      local d, at = M.best_within(f, "g", base.g + budget, "d")
      da[#da + 1] = d
      sh[#sh + 1] = at.shift
      local g = M.best_within(f, "d", target, "g")
      if g then gb[#gb + 1] = g end
    end
    local steps, shares, lrs = {}, {}, {}
    for _, s in ipairs(all[method]) do
      if isnum(s.step_seconds) then steps[#steps + 1] = s.step_seconds end
      if isnum(s.trainable_share) then shares[#shares + 1] = s.trainable_share end
      lrs[s.lr] = true
    end
    local nl = 0
    for _ in pairs(lrs) do nl = nl + 1 end
    local r = {method = method, seeds = seeds, lrs = nl, runs = #all[method]}
    r.domain_at_budget, r.domain_at_budget_sd = M.mean_sd(da)
    r.general_at_target, r.general_at_target_sd, r.general_at_target_n = M.mean_sd(gb)
    r.token_shift_at_budget = M.mean_sd(sh)
    r.step_seconds = M.mean_sd(steps)
    r.trainable_share = M.mean_sd(shares)
    result.methods[method] = r
    result.rows[#result.rows + 1] = r
  end
  return result
end

local function fmt(m, sd) return m and (sd and ("%.3f ± %.3f"):format(m, sd) or ("%.3f"):format(m)) or "n/a" end
local function pct(v) return v and ("%.1f%%"):format(100 * v) or "n/a" end
local function num(v, f) return v and (f or "%.3f"):format(v) or "n/a" end

-- The frontier tables as Markdown lines.
function M.frontier_md(res)
  local md = {}
  md[#md + 1] = ("Base model: general %.4f, domain %.4f nats/token. (a) budget: general ≤ %.4f (+%.2f); "
    .. "(b) target: domain ≤ %.2f. Mean ± sd over seeds."):format(res.base.g, res.base.d, res.base.g + res.budget,
    res.budget, res.target)
  md[#md + 1] = ""
  md[#md + 1] = "| Method | Runs (LRs × seeds) | (a) domain loss at general +" .. res.budget .. " | (b) general loss at domain "
    .. ("%.2f"):format(res.target) .. " | Trainable share | Wall s/step | Token shift (general, at (a)) |"
  md[#md + 1] = "|---|---|---|---|---|---|---|"
  for _, r in ipairs(res.rows) do
    md[#md + 1] = ("| %s | %d (%d × %d) | %s | %s%s | %s | %s | %s |"):format(r.method, r.runs, r.lrs, r.seeds,
      fmt(r.domain_at_budget, r.domain_at_budget_sd), fmt(r.general_at_target, r.general_at_target_sd),
      (r.general_at_target_n or 0) < r.seeds and (" (%d/%d seeds reach it)"):format(r.general_at_target_n or 0,
        r.seeds) or "", pct(r.trainable_share), num(r.step_seconds), num(r.token_shift_at_budget))
  end
  md[#md + 1] = ""
  md[#md + 1] = "Seed-mean points (general after, domain after ± sd over seeds, token shift on the general holdout):"
  md[#md + 1] = ""
  md[#md + 1] = "| Method | LR | General | Domain | Token shift | Seeds |"
  md[#md + 1] = "|---|---|---|---|---|---|"
  for _, r in ipairs(res.rows) do
    for _, p in ipairs(res.means[r.method]) do
      md[#md + 1] = ("| %s | %g | %s | %s | %.3f | %d |"):format(r.method, p.lr, fmt(p.general_after, p.general_sd),
        fmt(p.domain_after, p.domain_sd), p.token_shift_general, p.seeds)
    end
  end
  return md
end

-- The frontier chart: per method the seed means joined in LR order from the base model, the budget and target lines.
function M.frontier_chart(res, path, title)
  local series, ylo = {}, math.huge
  for i, r in ipairs(res.rows) do
    local xs, ys, labels = {res.base.g}, {res.base.d}, {"base"}
    for _, p in ipairs(res.means[r.method]) do
      xs[#xs + 1], ys[#ys + 1], labels[#labels + 1] = p.general_after, p.domain_after, ("%g"):format(p.lr)
      ylo = math.min(ylo, p.domain_after)
    end
    series[#series + 1] = {name = r.method, x = xs, y = ys, labels = i == 1 and labels or nil, connect = true}
  end
  series[#series + 1] = {name = ("general budget +%.2f"):format(res.budget), x = {res.base.g + res.budget,
    res.base.g + res.budget}, y = {ylo, res.base.d}, connect = true}
  series[#series + 1] = {name = ("domain target %.2f"):format(res.target), x = {res.base.g, res.base.g + 2 * res.budget},
    y = {res.target, res.target}, connect = true}
  return adept.chart.scatter{path = path, series = series, height = 600, title = title or "LR-sweep frontiers (seed means)",
    xlabel = "general held-out loss", ylabel = "domain held-out loss"}
end

-- adept.report.sweep{dir=, rows=, title=, budget=, target=, params=}: a sweep's report.md -- the results table
-- (one row per run: its grid parameters, status, losses) and, when the runs carry method/lr/losses, the frontier
-- tables and chart. Returns {path=, frontier=}.
function M.sweep(opts)
  require("adept.options").check_keys(opts, {"dir", "rows", "title", "budget", "target", "params"}, "adept.report.sweep")
  local rows, params = opts.rows or {}, opts.params or {}
  local md = {"# " .. (opts.title or "Sweep"), "",
    ("adeptlua %s, %s. %d runs."):format(adept.version(), os.date("!%Y-%m-%d %H:%M UTC"), #rows), "", "## Runs", ""}
  local head = {}
  for _, k in ipairs(params) do head[#head + 1] = k end
  for _, k in ipairs{"seed", "status", "general after", "domain after", "trainable", "s/step"} do head[#head + 1] = k end
  md[#md + 1] = "| " .. table.concat(head, " | ") .. " |"
  md[#md + 1] = "|" .. string.rep("---|", #head)
  local summaries = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for _, k in ipairs(params) do cells[#cells + 1] = tostring(r[k]) end
    cells[#cells + 1] = tostring(r.seed)
    cells[#cells + 1] = tostring(r.status)
    cells[#cells + 1] = isnum(r.general_after) and ("%.4f"):format(r.general_after) or "n/a"
    cells[#cells + 1] = isnum(r.domain_after) and ("%.4f"):format(r.domain_after) or "n/a"
    cells[#cells + 1] = isnum(r.trainable_share) and pct(r.trainable_share) or "n/a"
    cells[#cells + 1] = isnum(r.step_seconds) and ("%.3f"):format(r.step_seconds) or "n/a"
    md[#md + 1] = "| " .. table.concat(cells, " | ") .. " |"
    if isnum(r.general_after) and isnum(r.domain_after) and isnum(r.lr) then summaries[#summaries + 1] = r end
  end
  local res
  if #summaries > 0 then
    res = M.frontier(summaries, {budget = opts.budget, target = opts.target})
    md[#md + 1] = ""
    md[#md + 1] = "## Frontiers across learning rates"
    md[#md + 1] = ""
    for _, line in ipairs(M.frontier_md(res)) do md[#md + 1] = line end
    local ok, err = pcall(M.frontier_chart, res, opts.dir .. "/frontier", opts.title and (opts.title .. ": frontiers"))
    if ok then
      md[#md + 1] = ""
      md[#md + 1] = "![trade-off frontiers per method, seed means](frontier.png)\n\n[SVG](frontier.svg)"
    else
      adept.log("warn", "adept.report.sweep: frontier chart: " .. tostring(err))
    end
  end
  local path = opts.dir .. "/report.md"
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(md, "\n"), "\n")
  f:close()
  return {path = path, frontier = res}
end

return M
