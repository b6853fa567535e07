-- Analysis of the MedQuAD demonstration (recipes/demo/medquad.lua): per method, the trade-off frontier of
-- (general, domain) held-out loss over the LR sweep, starting at the base model (LR 0), and
--   (a) the lowest domain loss reached with general loss <= base + budget (default 0.3 nats),
--   (b) the lowest general loss kept at domain loss <= a fixed target (default: the largest of the methods'
--       best domain losses, so every frontier reaches it),
-- both read off the piecewise-linear frontier (points joined in LR order, crossings interpolated), per seed,
-- then mean +- sd over seeds (adept.report.frontier). Writes <root>/results.md, results.json and adept.report's charts of seed means.
-- Usage: adeptlua recipes/demo/analyze.lua [root=runs/medquad] [budget=0.3] [target=3.0] [domain_name=MedQuAD]
local adept = require "adept"
local a = adept.args
local root = a.root or "runs/medquad"
local budget = a.budget or 0.3
local domain_name = a.domain_name or "MedQuAD" -- for titles: root=runs/math_docs domain_name=math_docs

local function read_json(path)
  local ok, v = pcall(adept.json.read, path) -- a run still being written has no summary yet
  return ok and v or nil
end

-- all[method] = every summary of that method
local all, base = {}, nil
local order = {}
for _, method in ipairs(adept.fs.list(root)) do
  local dir = root .. "/" .. method
  if method ~= "mean" and method ~= "report" and adept.fs.exists(dir) and not method:match("%.") then
    for _, run in ipairs(adept.fs.list(dir)) do
      local s = read_json(dir .. "/" .. run .. "/summary.json")
      if s then
        if not all[method] then all[method] = {}; order[#order + 1] = method end
        table.insert(all[method], s)
        base = base or {g = s.general_before, d = s.domain_before}
      end
    end
  end
end
assert(base, "no finished runs under " .. root)
table.sort(order)

-- the frontier metrics (adept.report.frontier: per seed, then mean ± sd over seeds)
local summaries = {}
for _, method in ipairs(order) do
  for _, s in ipairs(all[method]) do s.method = method; summaries[#summaries + 1] = s end
end
local res = adept.report.frontier(summaries, {budget = budget, target = a.target})
local rows, means, target = res.rows, res.means, res.target -- rows: one per method, in `order`
local results = {base = res.base, budget = budget, target = target, methods = res.methods}
local text = table.concat(adept.report.frontier_md(res), "\n") .. "\n"
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
  title = ("stories260K on %s: seed means (%d seeds)"):format(domain_name, rows[1] and rows[1].seeds or 0)}

-- the frontiers as analysed: seed means joined in LR order from the base model, the budget and target lines
adept.fs.mkdir_p(root .. "/report")
adept.report.frontier_chart(res, root .. "/report/frontier.png",
  ("stories260K -> %s: LR-sweep frontiers (seed means)"):format(domain_name))
print("report: " .. root .. "/report/report.md, frontier chart: " .. root .. "/report/frontier.png")
