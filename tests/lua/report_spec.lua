-- adept.report and the pieces it rests on (adept.json, adept.chart): synthetic run directories in a temp dir,
-- a report over them, and checks that report.md holds the table rows and image links and the PNGs exist.
local adept = require "adept"

local made = {}

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  made[#made + 1] = d
  return d
end

local function cleanup()
  for _, d in ipairs(made) do os.execute("rm -rf '" .. d .. "'") end
  made = {}
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Width and height from a PNG's IHDR chunk (big-endian at bytes 17..24).
local function png_size(path)
  local s = read(path)
  if not s or s:sub(1, 8) ~= "\137PNG\r\n\26\n" or s:sub(13, 16) ~= "IHDR" then return nil end
  local w, h = string.unpack(">I4I4", s, 17)
  return w, h
end

-- A run directory: metrics.jsonl with training and eval records (and LR-scale events), optional summary and
-- importance files. `shift` makes runs differ so their curves and points are distinct.
local function make_run(root, name, method, lr, shift, opts)
  opts = opts or {}
  local dir = root .. "/" .. name
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  local lines = {}
  for step = 0, 200, 5 do
    lines[#lines + 1] = adept.json.encode{step = step, loss = 2 + 6 * math.exp(-step / 40) + shift, lr = lr,
      grad_norm = 1.5, tokens = step * 4096, time = step * 0.05}
    if step % 50 == 0 then
      lines[#lines + 1] = adept.json.encode{eval = "general", step = step, loss = 3 + shift + step * 0.002 * lr * 1e4,
        ppl = 20}
      lines[#lines + 1] = adept.json.encode{eval = "domain", step = step, loss = 4 - step * 0.004 - shift, ppl = 50}
    end
    if opts.scales and step % 50 == 0 then
      lines[#lines + 1] = adept.json.encode{event = "lr_scales", step = step, scales = {
        ["model.layers.2.mlp.down_proj.weight"] = 0.5 + step / 200,
        ["model.layers.2.self_attn.q_proj.weight"] = 2 - step / 200,
        ["model.layers.10.mlp.up_proj.weight"] = 1.0}}
    end
  end
  if opts.truncated then lines[#lines + 1] = '{"step": 205, "loss": 2.' end -- a run killed mid-write
  write(dir .. "/metrics.jsonl", table.concat(lines, "\n") .. "\n")
  if not opts.no_summary then
    write(dir .. "/summary.json", adept.json.encode{name = name, method = method, lr = lr, general_before = 3.0,
      general_after = 3.1 + shift + lr * 1e3, domain_before = 4.0, domain_after = 3.2 - shift - lr * 1e3,
      trainable_share = opts.share or 1.0, tokens = 819200, wall_time = 75.5})
  end
  if opts.importance then
    write(dir .. "/importance.json", adept.json.encode{
      {metric = "mask_out", probe = "general", scores = {["0"] = 0.9, ["1"] = 0.1, ["2"] = 0.4, ["3"] = 0.7}},
      {metric = "grad_weight", probe = "general", scores = {["0"] = 12, ["1"] = 30, ["2"] = 2, ["3"] = 8}}})
  end
  return dir
end

describe("adept.json", function()
  after_each(cleanup)

  it("round-trips nested values with sorted keys", function()
    local v = {step = 3, loss = 2.5, tags = {"a", "b"}, nested = {x = true, y = false}}
    local s = adept.json.encode(v)
    assert.equals('{"loss":2.5,"nested":{"x":true,"y":false},"step":3,"tags":["a","b"]}', s)
    local back = adept.json.decode(s)
    assert.same(v, back)
    assert.equals("integer", math.type(back.step))
  end)

  it("decodes null to adept.json.null and non-finite numbers encode as null", function()
    local v = adept.json.decode('[1, null, "x"]')
    assert.equals(adept.json.null, v[2])
    assert.equals('{"a":null}', adept.json.encode{a = 0 / 0})
  end)

  it("never crashes on random JSON-like input and round-trips what it accepts", function()
    local seed = os.time()
    print("adept.json random input seed " .. seed)
    math.randomseed(seed)
    local alphabet = '{}[],:"\\0123456789.eE+-truefalsnu \n\0\255'
    local accepted = 0
    for _ = 1, 3000 do
      local t = {}
      for i = 1, math.random(1, 24) do
        local k = math.random(1, #alphabet)
        t[i] = alphabet:sub(k, k)
      end
      local ok, v = pcall(adept.json.decode, table.concat(t))
      if ok then
        accepted = accepted + 1
        local once = adept.json.encode(v) -- encoding what was decoded is stable (inf and NaN become null once)
        assert.equals(once, adept.json.encode(adept.json.decode(once)))
      else
        assert.matches("invalid JSON at byte", v, 1, true)
      end
    end
    assert.is_true(accepted > 0)
  end)

  it("raises on malformed JSON with the byte offset", function()
    local ok, err = pcall(adept.json.decode, '{"a": [1, 2')
    assert.is_false(ok)
    assert.matches("adept.json.decode: invalid JSON at byte", err, 1, true)
    assert.is_false(pcall(adept.json.decode, '{"a": 1} trailing'))
    local cyc = {}
    cyc.self = cyc
    assert.is_false(pcall(adept.json.encode, cyc))
    assert.is_false(pcall(adept.json.encode, {f = print}))
  end)
end)

describe("adept.chart", function()
  after_each(cleanup)

  it("writes both files when the path has no extension and returns their names", function()
    local d = tmpdir()
    local files = adept.chart.line{path = d .. "/c", width = 400, height = 300,
      series = {{name = "a", x = {1, 2, 3}, y = {3, 2, 1}}}}
    assert.same({d .. "/c.png", d .. "/c.svg"}, files)
    assert.same({400, 300}, {png_size(d .. "/c.png")})
    assert.matches("<svg", read(d .. "/c.svg"), 1, true)
  end)

  it("names the bad input in its errors", function()
    local d = tmpdir()
    local ok, err = pcall(adept.chart.line, {path = d .. "/x.png", series = {{name = "s", x = {1, 2}, y = {1}}}})
    assert.is_false(ok)
    assert.matches("x has 2 values but y has 1", err, 1, true)
    ok, err = pcall(adept.chart.scatter, {path = d .. "/x.gif", series = {{name = "s", y = {1}}}})
    assert.matches("unsupported extension", err, 1, true)
    ok, err = pcall(adept.chart.line, {path = d .. "/x.png", width = 20, series = {{y = {1}}}})
    assert.matches("bad argument #1", err, 1, true)
    ok, err = pcall(adept.chart.bars, {path = d .. "/x.png", categories = {"a", "b"}, series = {{values = {1}}}})
    assert.matches("has 1 values for 2 categories", err, 1, true)
    ok, err = pcall(adept.chart.heatmap, {path = d .. "/no/such/dir/h.png", rows = {"r"}, cols = {"c"}, values = {{1}}})
    assert.matches("cannot open for writing", err, 1, true)
    ok, err = pcall(adept.chart.line, {path = d .. "/x.png", logy = true, series = {{name = "s", y = {1, 0}}}})
    assert.matches("log-scale axis needs y > 0", err, 1, true)
  end)
end)

describe("adept.report", function()
  after_each(cleanup)

  it("writes report.md with the comparison table and every chart for full run directories", function()
    local root = tmpdir()
    local runs = {
      make_run(root, "adept-lr1e-4", "ADEPT", 1e-4, 0.0, {importance = true, scales = true, share = 0.125}),
      make_run(root, "adept-lr3e-4", "ADEPT", 3e-4, 0.05, {scales = true, share = 0.125}),
      make_run(root, "cpt-lr1e-4", "CPT", 1e-4, 0.2, {truncated = true}),
      make_run(root, "cpt-lr3e-4", "CPT", 3e-4, 0.3),
    }
    local out = root .. "/report"
    local res = adept.report{dir = out, runs = runs, title = "Synthetic comparison"}
    assert.equals(out .. "/report.md", res.path)
    local md = assert(read(res.path))
    assert.matches("# Synthetic comparison", md, 1, true)
    -- one table row per run, with its numbers from summary.json
    assert.matches("| adept-lr1e-4 | ADEPT | 1e-4 | 3.0000 | 3.2000 | +0.2000 | 4.0000 | 3.1000 | -0.9000 | 12.5% | 819.2k | 1m15s |",
      md, 1, true)
    assert.matches("| cpt-lr3e-4 | CPT | 3e-4 |", md, 1, true)
    for _, base in ipairs{"tradeoff", "loss_train", "loss_eval_general", "loss_eval_domain", "importance", "lr_scales_adept-lr1e-4",
                          "lr_scales_adept-lr3e-4"} do
      assert.matches("](" .. base .. ".png)", md, 1, true)
      assert.matches("(" .. base .. ".svg)", md, 1, true)
      local w, h = png_size(out .. "/" .. base .. ".png")
      assert.is_truthy(w, base .. ".png is not a PNG")
      assert.is_true(w >= 900 and h >= 320, base .. ".png is " .. tostring(w) .. "x" .. tostring(h))
      assert.matches("<svg", read(out .. "/" .. base .. ".svg") or "", 1, true)
    end
    assert.same({900, 540}, {png_size(out .. "/loss_train.png")})
    assert.same({900, 600}, {png_size(out .. "/tradeoff.png")})
  end)

  it("falls back on eval records without summary.json and leaves out charts without data", function()
    local root = tmpdir()
    local dir = make_run(root, "solo", "ADEPT", 1e-4, 0.0, {no_summary = true})
    local res = adept.report{dir = dir, width = 640, height = 400}
    local md = assert(read(res.path))
    -- before = eval at step 0, after = the last eval (step 200): general 3 -> 3.4, domain 4 -> 3.2
    assert.matches("| solo | solo | – | 3.0000 | 3.4000 | +0.4000 | 4.0000 | 3.2000 | -0.8000 | – | 819.2k | 10.0 s |",
      md, 1, true)
    assert.same({640, 400}, {png_size(dir .. "/loss_train.png")})
    assert.is_nil(md:find("importance.png", 1, true))
    assert.is_nil(md:find("lr_scales", 1, true))
    assert.is_nil(read(dir .. "/importance.png"))
  end)

  it("reads adept.train's log layout and adept.importance.layers' file", function()
    local root = tmpdir()
    local dir = root .. "/trained"
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local lines = {}
    for step = 1, 40 do
      lines[#lines + 1] = adept.json.encode{type = "train", step = step, loss = 5 - step * 0.05, lr = 1e-3,
        grad_norm = 1, tokens_seen = step * 1000, tokens_per_s = 500, elapsed = step * 2.5, skipped = 0}
      if step % 20 == 0 then
        lines[#lines + 1] = adept.json.encode{type = "eval", step = step, loss = {general = 3 + step / 100,
          domain = 4 - step / 40}, perplexity = {general = 20, domain = 50}, tokens_seen = step * 1000,
          elapsed = step * 2.5}
      end
    end
    lines[#lines + 1] = adept.json.encode{type = "skip", step = 41, reason = "nan"}
    write(dir .. "/metrics.jsonl", table.concat(lines, "\n") .. "\n")
    write(dir .. "/importance.json", adept.json.encode{metric = "mask_out", seconds = 0.1,
      probe = {batches = 4, batch_shape = {2, 16}}, scores = {["0"] = 0.5, ["1"] = 0.25, ["2"] = 1.0}})
    local res = adept.report{dir = root .. "/out", runs = {{dir = dir, name = "t", method = "ADEPT", lr = 1e-3}}}
    local md = assert(read(res.path))
    -- no eval at step 0: "before" stays empty; after = the step-40 eval; tokens and time from the last record
    assert.matches("| t | ADEPT | 1e-3 | – | 3.4000 | – | – | 3.0000 | – | – | 40.0k | 1m40s |", md, 1, true)
    assert.matches("probe: 4 batches of 2×16", md, 1, true)
    for _, base in ipairs{"loss_train", "loss_eval_domain", "loss_eval_general", "importance", "tradeoff"} do
      assert.is_truthy(png_size(root .. "/out/" .. base .. ".png"), base)
    end
  end)

  it("survives malformed run files and still writes the table", function()
    local root = tmpdir()
    local dir = root .. "/broken"
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    write(dir .. "/summary.json", "[1, 2")
    write(dir .. "/importance.json", '{"metric": "m", "scores": [1, "x", null, 0.5]}')
    write(dir .. "/metrics.jsonl", table.concat({
      '{"step": "x", "loss": {}}', '{"type": "eval", "step": 1, "loss": {"general": "high"}}',
      '{"event": "lr_scales", "step": 5, "scales": {"a": "b"}}', 'not json', '[1, 2, 3]', '{"step": 1, "loss": 2.5}',
      '{"step": 2, "loss": 2.25, "tokens": "many"}', ''}, "\n"))
    local res = adept.report{dir = dir}
    local md = assert(read(res.path))
    assert.matches("| broken | broken | – | – | – | – | – | – | – | – | – | – |", md, 1, true)
    -- the two good training records still make a chart; the array scores make an importance chart (layers 0, 3)
    assert.is_truthy(png_size(dir .. "/loss_train.png"))
    assert.is_truthy(png_size(dir .. "/importance.png"))
    assert.is_nil(md:find("lr_scales", 1, true)) -- no finite scale: the heatmap is left out
  end)

  it("draws a log-scale line chart and rejects non-positive values there", function()
    local d = tmpdir()
    assert.same({d .. "/l.png"}, adept.chart.line{path = d .. "/l.png", logy = true,
      series = {{name = "a", x = {1, 2, 3}, y = {1e-3, 1e-1, 10}}}})
    assert.is_false(pcall(adept.chart.line, {path = d .. "/l.png", logy = true, series = {{y = {1, -1}}}}))
  end)

  it("rejects a missing dir with a clear message", function()
    local ok, err = pcall(adept.report, {runs = {}})
    assert.is_false(ok)
    assert.matches("field 'dir'", err, 1, true)
  end)
end)

describe("adept.json files", function()
  it("writes atomically and reads back, and raises naming missing or malformed files", function()
    local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p '" .. dir .. "'"))
    local path = dir .. "/x.json"
    adept.json.write(path, {a = 1, b = {1, 2, 3}, c = "text"})
    local v = adept.json.read(path)
    assert.same({a = 1, b = {1, 2, 3}, c = "text"}, v)
    local ok, msg = pcall(adept.json.read, dir .. "/absent.json")
    assert.is_false(ok)
    assert.matches("adept.json.read: " .. dir .. "/absent.json", msg, 1, true)
    local f = assert(io.open(dir .. "/bad.json", "w")); f:write("{\"a\": "); f:close()
    ok, msg = pcall(adept.json.read, dir .. "/bad.json")
    assert.is_false(ok)
    assert.matches("adept.json.read: " .. dir .. "/bad.json: invalid JSON", msg, 1, true)
    assert.has_error(function() adept.json.write(dir .. "/no/such/dir/x.json", {}) end)
  end)
end)

describe("adept.report.frontier and adept.report.sweep", function()
  -- two methods, two seeds, two LRs; base (general 2, domain 5). Method "a", seed 0: (2.1, 4) at lr 1, (2.5, 3)
  -- at lr 2; seed 1: (2.2, 4.2), (2.6, 3.2). Budget 0.3 -> general <= 2.3: seed 0 reaches the crossing of the
  -- segment (2.1, 4)-(2.5, 3) at t = 0.5, domain 3.5; seed 1 at t = 0.25 of (2.2, 4.2)-(2.6, 3.2): 3.95.
  local function s(method, seed, lr, g, d)
    return {method = method, seed = seed, lr = lr, general_before = 2, domain_before = 5, general_after = g,
            domain_after = d, trainable_share = 0.5, step_seconds = 0.1, token_shift_general = 0.1}
  end
  local sums = {s("a", 0, 1, 2.1, 4), s("a", 0, 2, 2.5, 3), s("a", 1, 1, 2.2, 4.2), s("a", 1, 2, 2.6, 3.2),
                s("b", 0, 1, 2.0, 4.5), s("b", 0, 2, 2.1, 4.4), s("b", 1, 1, 2.0, 4.6), s("b", 1, 2, 2.1, 4.4)}
  it("reads the budget and target off each seed's frontier, then mean ± sd", function()
    local res = adept.report.frontier(sums, {budget = 0.3, target = 4.4})
    local a = res.methods.a
    assert.near(3.725, a.domain_at_budget, 1e-12)               -- (3.5 + 3.95) / 2
    assert.near(math.sqrt(2 * 0.225 ^ 2), a.domain_at_budget_sd, 1e-12)
    assert.equals(2, a.seeds)
    assert.near(4.4, res.methods.b.domain_at_budget, 1e-12)     -- both seeds end at 4.4 within the budget
    assert.near(0, res.methods.b.domain_at_budget_sd, 1e-12)
    -- seed-mean points per LR, with the sd over seeds
    assert.near(4.1, res.means.a[1].domain_after, 1e-12)
    assert.near(math.sqrt(0.02), res.means.a[1].domain_sd, 1e-12)
    assert.has_error(function() adept.report.frontier({}, {}) end)
    assert.has_error(function() adept.report.frontier(sums, {budjet = 1}) end)
  end)
  it("writes a sweep report with the runs table, the frontier tables and the chart", function()
    local dir = os.tmpname()
    os.remove(dir)
    adept.fs.mkdir_p(dir)
    local rows = {}
    for i, x in ipairs(sums) do rows[i] = x; x.status = "done" end
    local r = adept.report.sweep{dir = dir, rows = rows, params = {"method", "lr"}, title = "T"}
    local text = assert(io.open(r.path)):read("a")
    assert.matches("| method | lr | seed | status |", text, 1, true)
    assert.matches("## Frontiers across learning rates", text, 1, true)
    assert.matches("| a | 4 (2 × 2) | 3.725 ± 0.318 |", text, 1, true)
    assert.truthy(adept.fs.exists(dir .. "/frontier.png"))
    adept.fs.remove_tree(dir)
  end)
end)
