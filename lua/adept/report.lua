-- adept.report{dir=, runs=, title=}: reads run directories (metrics.jsonl, importance.json, summary.json) and
-- writes dir/report.md with a table comparing the runs and charts (PNG + SVG) drawn by adept.chart.
--
-- Choices: `runs` holds run directories (strings) or tables {dir=, name=, method=, lr=} that override the summary;
-- without `runs`, `dir` itself is the one run. Charts sit beside report.md in `dir`, each only when its data
-- exists. Summary fields missing from summary.json are taken from the eval records of metrics.jsonl (before = the
-- eval at step 0, after = the last eval; tokens and wall time from the last record). Unreadable lines of
-- metrics.jsonl (a run killed mid-write) are skipped with a warning.
local adept = require "adept"

local M = {}

local json = adept.json

local function isnum(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

local function decode_file(path)
  local ok, v = pcall(json.read, path)
  local err = not ok and tostring(v) or nil
  if not ok then v = nil end
  if v == nil and adept.fs.exists(path) then -- present but not JSON: say so; absent files are simply skipped
    adept.log("warn", "adept.report: " .. err:gsub("^adept%.json%.read: ", ""))
  end
  return type(v) == "table" and v or nil
end

local function basename(path) return (path:gsub("/+$", ""):match("([^/]+)$") or path) end

-- ---- reading a run ---------------------------------------------------------------------------------------

-- Two record layouts are read: adept.train's ({type="train"|"eval"|"skip", step=, loss=, tokens_seen=, elapsed=},
-- eval loss a table {set -> loss}) and the flat one ({step=, loss=, tokens=, time=} for training, {eval="general",
-- step=, loss=} for evals, {event="lr_scales", step=, scales={unit -> scale}} for LR-scale refreshes).
local function read_metrics(path)
  local m = {train = {}, evals = {}, eval_names = {}, lr_events = {}, bad = 0}
  local function add_eval(name, step, loss)
    local e = m.evals[name]
    if not e then
      e = {}
      m.evals[name] = e
      m.eval_names[#m.eval_names + 1] = name
    end
    e[#e + 1] = {step = isnum(step) and step or #e, loss = loss}
  end
  local f = io.open(path, "rb")
  if not f then return nil end
  for line in f:lines() do
    if line:find("%S") then
      local ok, r = pcall(json.decode, line)
      if not ok or type(r) ~= "table" then
        m.bad = m.bad + 1
      else
        local tokens, time = r.tokens or r.tokens_seen, r.time or r.elapsed
        if isnum(tokens) then m.tokens = math.max(m.tokens or 0, tokens) end
        if isnum(time) then m.time = math.max(m.time or 0, time) end
        local kind = r.type or r.event
        if kind == "lr_scales" and type(r.scales) == "table" and isnum(r.step) then
          m.lr_events[#m.lr_events + 1] = {step = r.step, scales = r.scales}
        elseif type(r.eval) == "string" and isnum(r.loss) then
          add_eval(r.eval, r.step, r.loss)
        elseif kind == "eval" and type(r.loss) == "table" then
          local names = {}
          for name, v in pairs(r.loss) do
            if type(name) == "string" and isnum(v) then names[#names + 1] = name end
          end
          table.sort(names)
          for _, name in ipairs(names) do add_eval(name, r.step, r.loss[name]) end
        elseif (kind == "train" or (kind == nil and r.eval == nil)) and isnum(r.loss) and isnum(r.step) then
          m.train[#m.train + 1] = {step = r.step, loss = r.loss}
        end
      end
    end
  end
  f:close()
  if m.bad > 0 then adept.log("warn", string.format("adept.report: %s: skipped %d unreadable lines", path, m.bad)) end
  return m
end

-- importance.json: one {metric=, probe=, scores=} object, an array of them, {metrics={...}}, or a map
-- metric -> object. scores: {"layer" -> score} or an array indexed by layer + 1.
local function read_importance(path)
  local v = decode_file(path)
  if not v then return nil end
  local list = {}
  local function add(o, key)
    if type(o) ~= "table" or type(o.scores) ~= "table" then return end
    local scores, any = {}, false
    for k, s in pairs(o.scores) do
      local layer = math.type(k) == "integer" and k - 1 or tonumber(k)
      if layer and isnum(s) then scores[math.tointeger(layer) or layer] = s; any = true end
    end
    if any then list[#list + 1] = {metric = tostring(o.metric or key or "score"), probe = o.probe, scores = scores} end
  end
  if v.scores then add(v)
  elseif v[1] then for _, o in ipairs(v) do add(o) end
  elseif type(v.metrics) == "table" then for _, o in ipairs(v.metrics) do add(o) end
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do add(v[k], k) end
  end
  return #list > 0 and list or nil
end

local function first_last_eval(m, name)
  local e = m and m.evals[name]
  if not e or #e == 0 then return nil, nil end
  local before
  for _, r in ipairs(e) do if r.step == 0 then before = r.loss end end
  local last = e[1]
  for _, r in ipairs(e) do if r.step >= last.step then last = r end end
  return before, last.loss
end

local function read_run(spec, i)
  if type(spec) == "string" then spec = {dir = spec} end
  if type(spec) ~= "table" or type(spec.dir) ~= "string" then
    error(string.format("adept.report: runs[%d] must be a directory name or a table with dir=, got %s", i,
      type(spec)), 3)
  end
  local dir = spec.dir
  local run = {dir = dir, summary = decode_file(dir .. "/summary.json") or {}}
  run.metrics = read_metrics(dir .. "/metrics.jsonl")
  run.importance = read_importance(dir .. "/importance.json")
  local s = run.summary
  run.name = tostring(spec.name or s.name or basename(dir))
  run.method = tostring(spec.method or s.method or run.name)
  run.lr = isnum(spec.lr) and spec.lr or isnum(s.lr) and s.lr or nil
  for _, set in ipairs{"general", "domain"} do
    local b, a = first_last_eval(run.metrics, set)
    run[set .. "_before"] = isnum(s[set .. "_before"]) and s[set .. "_before"] or b
    run[set .. "_after"] = isnum(s[set .. "_after"]) and s[set .. "_after"] or a
  end
  run.trainable_share = isnum(s.trainable_share) and s.trainable_share or nil
  run.tokens = isnum(s.tokens) and s.tokens or run.metrics and run.metrics.tokens
  run.wall_time = isnum(s.wall_time) and s.wall_time or run.metrics and run.metrics.time
  if not (run.metrics or next(s) or run.importance) then
    adept.log("warn", "adept.report: " .. dir .. ": no metrics.jsonl, summary.json or importance.json")
  end
  return run
end

-- ---- formatting ------------------------------------------------------------------------------------------

local DASH = "–"

local function fmt_loss(v) return isnum(v) and string.format("%.4f", v) or DASH end

local function fmt_delta(a, b)
  if not (isnum(a) and isnum(b)) then return DASH end
  return string.format("%+.4f", b - a)
end

function M.format_lr(v)
  if not isnum(v) then return DASH end
  if v <= 0 then return tostring(v) end
  local e = math.floor(math.log(v, 10) + 1e-9)
  local mant = v / 10 ^ e
  local s = math.abs(mant - math.floor(mant + 0.5)) < 1e-6 and string.format("%de%d", math.floor(mant + 0.5), e)
    or string.format("%.1fe%d", mant, e)
  return (s:gsub("e0$", ""))
end

local function fmt_share(v)
  if not isnum(v) then return DASH end
  return string.format("%.1f%%", v <= 1 and v * 100 or v)
end

local function fmt_tokens(v)
  if not isnum(v) then return DASH end
  if v >= 1e9 then return string.format("%.2fG", v / 1e9) end
  if v >= 1e6 then return string.format("%.2fM", v / 1e6) end
  if v >= 1e4 then return string.format("%.1fk", v / 1e3) end
  return string.format("%d", math.floor(v + 0.5))
end

local function fmt_time(v)
  if not isnum(v) then return DASH end
  if v < 60 then return string.format("%.1f s", v) end
  if v < 3600 then return string.format("%dm%02ds", v // 60, math.floor(v % 60)) end
  return string.format("%dh%02dm", v // 3600, math.floor(v % 3600 / 60))
end

local function md_escape(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

-- a name usable as a file stem: no dots either, since the chart writer reads the extension for the format
local function file_safe(s) return (tostring(s):gsub("[^%w%-_]", "_")) end

-- ---- charts ----------------------------------------------------------------------------------------------

-- Long curves are averaged over buckets so that a million-step run still draws quickly and reads clearly.
local function downsample(xs, ys, max)
  if #xs <= max then return xs, ys end
  local bx, by, per = {}, {}, #xs / max
  for b = 0, max - 1 do
    local lo, hi = math.floor(b * per) + 1, math.floor((b + 1) * per)
    local sx, sy, n = 0, 0, 0
    for i = lo, hi do
      if isnum(ys[i]) then sx, sy, n = sx + xs[i], sy + ys[i], n + 1 end
    end
    if n > 0 then bx[#bx + 1], by[#by + 1] = sx / n, sy / n end
  end
  return bx, by
end

local function loss_series(records, name)
  table.sort(records, function(a, b) return a.step < b.step end)
  local xs, ys = {}, {}
  for i, r in ipairs(records) do xs[i], ys[i] = r.step, r.loss end
  xs, ys = downsample(xs, ys, 3000)
  return {name = name, x = xs, y = ys}
end

local function chart_loss_train(ctx, runs)
  local series = {}
  for _, r in ipairs(runs) do
    if r.metrics and #r.metrics.train > 0 then series[#series + 1] = loss_series(r.metrics.train, r.name) end
  end
  if #series == 0 then return end
  ctx.chart("line", "loss_train", "Training loss",
    {title = "Training loss", xlabel = "step", ylabel = "loss (mean token NLL)", series = series})
end

-- One chart per held-out set, one series per run: two sets on one chart would need a colour per (run, set).
local function chart_loss_eval(ctx, runs)
  local sets, seen = {}, {}
  for _, r in ipairs(runs) do
    for _, set in ipairs(r.metrics and r.metrics.eval_names or {}) do
      if not seen[set] then seen[set] = true; sets[#sets + 1] = set end
    end
  end
  for _, set in ipairs(sets) do
    local series = {}
    for _, r in ipairs(runs) do
      local e = r.metrics and r.metrics.evals[set]
      if e then series[#series + 1] = loss_series(e, r.name) end
    end
    ctx.chart("line", "loss_eval_" .. file_safe(set), "Evaluation loss: " .. set,
      {title = "Held-out loss: " .. set, xlabel = "step", ylabel = "loss (mean token NLL)", series = series})
  end
end

-- One series per method, one point per learning rate (joined in LR order), the untrained model apart.
local function chart_tradeoff(ctx, runs)
  local methods, order = {}, {}
  local base, seen = {name = "before training", x = {}, y = {}, labels = {}}, {}
  for _, r in ipairs(runs) do
    if isnum(r.general_after) and isnum(r.domain_after) then
      local m = methods[r.method]
      if not m then
        m = {}
        methods[r.method] = m
        order[#order + 1] = r.method
      end
      m[#m + 1] = r
    end
    if isnum(r.general_before) and isnum(r.domain_before) then
      local key = string.format("%.6g/%.6g", r.general_before, r.domain_before)
      if not seen[key] then
        seen[key] = true
        base.x[#base.x + 1], base.y[#base.y + 1] = r.general_before, r.domain_before
        base.labels[#base.labels + 1] = "base"
      end
    end
  end
  if #order == 0 then return end
  local series = {}
  for _, name in ipairs(order) do
    local pts = methods[name]
    table.sort(pts, function(a, b) return (a.lr or 0) < (b.lr or 0) end)
    local s = {name = name, x = {}, y = {}, labels = {}, connect = #pts > 1}
    for i, r in ipairs(pts) do
      s.x[i], s.y[i] = r.general_after, r.domain_after
      s.labels[i] = r.lr and ("lr " .. M.format_lr(r.lr)) or r.name
    end
    series[#series + 1] = s
  end
  if #base.x > 0 then series[#series + 1] = base end
  ctx.chart("scatter", "tradeoff", "General vs domain loss",
    {title = "General vs domain loss (lower-left is better)", xlabel = "general held-out loss",
     ylabel = "domain held-out loss", series = series, height = 600})
end

local function chart_importance(ctx, runs)
  local with = {}
  for _, r in ipairs(runs) do if r.importance then with[#with + 1] = r end end
  for _, r in ipairs(with) do
    local layers, seen = {}, {}
    for _, m in ipairs(r.importance) do
      for l in pairs(m.scores) do if not seen[l] then seen[l] = true; layers[#layers + 1] = l end end
    end
    table.sort(layers)
    -- several metrics live on different scales: each is divided by its largest magnitude to share one axis
    local scaled = #r.importance > 1
    local series, probes = {}, {}
    for _, m in ipairs(r.importance) do
      local peak = 0
      for _, s in pairs(m.scores) do peak = math.max(peak, math.abs(s)) end
      local values = {}
      for i, l in ipairs(layers) do
        local s = m.scores[l]
        values[i] = s == nil and false or (scaled and peak > 0) and s / peak or s
      end
      series[#series + 1] = {name = m.metric, values = values}
      local p = m.probe
      if type(p) == "table" and isnum(p.batches) then -- adept.importance.layers: {batches=, batch_shape=}
        local shape = type(p.batch_shape) == "table" and table.concat(p.batch_shape, "×") or nil
        p = string.format("%d batches%s", p.batches, shape and (" of " .. shape) or "")
      end
      if type(p) == "string" or type(p) == "number" then probes[#probes + 1] = tostring(p) end
    end
    local cats = {}
    for i, l in ipairs(layers) do cats[i] = tostring(l) end
    local title = "Layer importance" .. (#with > 1 and (" — " .. r.name) or "")
    local base = #with > 1 and ("importance_" .. file_safe(r.name)) or "importance"
    ctx.chart("bars", base, title .. (#probes > 0 and (" (probe: " .. probes[1] .. ")") or ""),
      {title = title, xlabel = "layer", ylabel = scaled and "score / largest score of the metric" or "score",
       categories = cats, series = series, width = math.max(ctx.width, math.min(1600, 200 + 10 * #layers * #series))})
  end
end

-- "model.layers.3.mlp.down_proj.weight" -> layer 3, "mlp.down_proj"; sorted by layer, then name.
local function unit_key(name)
  local layer, rest = name:match("^model%.layers%.(%d+)%.(.*)$")
  local short = (rest or name):gsub("%.weight$", "")
  return layer and tonumber(layer) or -1, layer and (layer .. "." .. short) or short
end

local function chart_lr_scales(ctx, runs)
  local with = {}
  for _, r in ipairs(runs) do if r.metrics and #r.metrics.lr_events > 0 then with[#with + 1] = r end end
  for _, r in ipairs(with) do
    local events = r.metrics.lr_events
    table.sort(events, function(a, b) return a.step < b.step end)
    local units, seen = {}, {}
    for _, e in ipairs(events) do
      for name in pairs(e.scales) do
        if type(name) == "string" and not seen[name] then seen[name] = true; units[#units + 1] = name end
      end
    end
    if #units > 0 then
      table.sort(units, function(a, b)
        local la, sa = unit_key(a)
        local lb, sb = unit_key(b)
        if la ~= lb then return la < lb end
        return sa < sb
      end)
      local rows, values, cols = {}, {}, {}
      for c, e in ipairs(events) do cols[c] = tostring(math.tointeger(e.step) or e.step) end
      for i, u in ipairs(units) do
        local _, short = unit_key(u)
        rows[i], values[i] = short, {}
        for c, e in ipairs(events) do
          local v = e.scales[u]
          values[i][c] = isnum(v) and v or false
        end
      end
      local title = "Learning-rate scale per unit" .. (#with > 1 and (" — " .. r.name) or "")
      local base = #with > 1 and ("lr_scales_" .. file_safe(r.name)) or "lr_scales"
      ctx.chart("heatmap", base, title,
        {title = title, xlabel = "step of the refresh", ylabel = "unit", zlabel = "LR multiplier", rows = rows,
         cols = cols, values = values,
         height = math.max(320, math.min(4000, 170 + #rows * (#rows <= 20 and 36 or 20)))})
    end
  end
end

-- ---- the report ------------------------------------------------------------------------------------------

local function table_md(runs)
  local out = {
    "| Run | Method | LR | General before | General after | Δ general | Domain before | Domain after | Δ domain |" ..
      " Trainable | Tokens | Wall time |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  }
  for _, r in ipairs(runs) do
    out[#out + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
      md_escape(r.name), md_escape(r.method), M.format_lr(r.lr), fmt_loss(r.general_before),
      fmt_loss(r.general_after), fmt_delta(r.general_before, r.general_after), fmt_loss(r.domain_before),
      fmt_loss(r.domain_after), fmt_delta(r.domain_before, r.domain_after), fmt_share(r.trainable_share),
      fmt_tokens(r.tokens), fmt_time(r.wall_time))
  end
  return table.concat(out, "\n")
end

local function open_report(dir)
  local path = dir .. "/report.md"
  local f = io.open(path, "wb")
  if not f then -- the directory may not exist yet (adept.fs, not a shell: a sandboxed recipe reports too)
    adept.fs.mkdir_p(dir)
    f = io.open(path, "wb")
  end
  return f, path
end

function M.report(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'report' (table expected, got " .. type(opts) .. ")", 2)
  end
  local dir = opts.dir
  if type(dir) ~= "string" or dir == "" then error("adept.report: field 'dir' (output directory) is required", 2) end
  local specs = opts.runs or {dir}
  if type(specs) ~= "table" then error("adept.report: field 'runs' must be a table of run directories", 2) end
  local f, path = open_report(dir)
  if not f then error("adept.report: cannot write " .. path, 2) end
  local runs, names = {}, {}
  for i, spec in ipairs(specs) do
    local r = read_run(spec, i)
    if names[r.name] then r.name = r.name .. " #" .. i end -- two runs named alike stay apart in legends
    names[r.name] = true
    runs[#runs + 1] = r
  end

  local ctx = {width = opts.width or 900, height = opts.height or 540, sections = {}, files = {}}
  function ctx.chart(kind, base, caption, args)
    args.path = dir .. "/" .. base
    args.width = args.width or ctx.width
    args.height = args.height or ctx.height
    local ok, written = pcall(adept.chart[kind], args)
    if not ok then -- one bad chart must not cost the whole report
      adept.log("warn", "adept.report: chart " .. base .. ": " .. tostring(written))
      return
    end
    for _, w in ipairs(written) do ctx.files[#ctx.files + 1] = w end
    ctx.sections[#ctx.sections + 1] = string.format("### %s\n\n![%s](%s.png)\n\n[SVG](%s.svg)\n", caption, caption,
      base, base)
  end
  chart_tradeoff(ctx, runs)
  chart_loss_train(ctx, runs)
  chart_loss_eval(ctx, runs)
  chart_importance(ctx, runs)
  chart_lr_scales(ctx, runs)

  local title = opts.title or "adeptlua report"
  local doc = {
    "# " .. md_escape(title), "",
    string.format("adeptlua %s, %s. %d run%s: %s.", adept.version(), os.date("!%Y-%m-%d %H:%M UTC"), #runs,
      #runs == 1 and "" or "s", table.concat((function()
        local t = {}
        for i, r in ipairs(runs) do t[i] = "`" .. r.dir .. "`" end
        return t
      end)(), ", ")), "",
    "## Runs", "",
    "Held-out loss (mean token NLL) before and after training; Δ < 0 is an improvement. Trainable: share of",
    "parameters updated.", "",
    table_md(runs), "",
  }
  if #ctx.sections > 0 then
    doc[#doc + 1] = "## Charts"
    doc[#doc + 1] = ""
    for _, s in ipairs(ctx.sections) do doc[#doc + 1] = s end
  end
  f:write(table.concat(doc, "\n"))
  f:close()
  return {path = path, files = ctx.files, runs = runs}
end

-- LR-sweep frontiers and sweep reports live in report_frontier.lua (one concern per file).
local frontier = require "adept.report_frontier"
M.frontier, M.frontier_md, M.frontier_chart, M.sweep, M.mean_sd = frontier.frontier, frontier.frontier_md,
  frontier.frontier_chart, frontier.sweep, frontier.mean_sd

return setmetatable(M, {__call = function(_, opts) return M.report(opts) end})
