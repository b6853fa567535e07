-- adept.sweep{recipe=, grid=, seeds=, out=}: runs a recipe for every combination of grid values x seeds, each
-- as its own adeptlua process (a failing run cannot take the sweep down), and collects one results table.
--
-- Choices: run directories are out/<key>=<value>,...,seed=<s> (keys sorted, values made filename-safe); the
-- recipe receives the grid values, the fixed `args`, seed=<s> and out=<run dir> as key=value overrides and
-- `--seed s`. A run is finished when its directory holds SWEEP_DONE (written by the sweep after exit 0) with
-- the run's identity -- the hash of its overrides, the recipe's source and the engine version -- so rerunning
-- the sweep skips finished runs and retries failed or interrupted ones; a finished run with another identity
-- (the recipe or the fixed args changed) is an error naming what differs, before anything runs (force=true
-- reruns it from an empty directory). Each run's output goes to
-- <run dir>/sweep.log. Results: out/results.json and out/results.csv, one row per run with its parameters,
-- status, exit code, directory and the fields of its summary.json (nested tables flattened as a.b); out/report.md
-- the same table and, when the summaries carry method, lr and losses, each method's trade-off frontier across
-- learning rates (seed mean ± sd, adept.report.sweep); report=false skips it.
local adept = require "adept"

local MARKER = "SWEEP_DONE"

local function argerr(msg) error("adept.sweep: " .. msg, 3) end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function read_json(path)
  local ok, v = pcall(adept.json.read, path)
  return ok and type(v) == "table" and v or nil
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function value_text(v)
  if math.type(v) == "float" then -- the shortest text that reads back as the same number
    for digits = 6, 17 do
      local s = ("%." .. digits .. "g"):format(v)
      if tonumber(s) == v then return s end
    end
  end
  return tostring(v)
end

-- The host that runs recipes: opts.host, $ADEPTLUA, or this process when it is adeptlua.
local function find_host(host)
  if host then return host end
  local env = os.getenv("ADEPTLUA")
  if env and env ~= "" then return env end
  local p = io.popen("readlink /proc/" .. adept.getpid() .. "/exe 2>/dev/null")
  local self = p and p:read("l")
  if p then p:close() end
  if self and self:match("adeptlua$") then return self end
  argerr("cannot find the adeptlua host: pass host= or set ADEPTLUA")
end

-- Every combination of the grid, keys in sorted order, values in the order given.
local function combinations(grid)
  local keys = {}
  for k, vs in pairs(grid) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then argerr("grid keys must be names, got " .. tostring(k)) end
    if type(vs) ~= "table" or #vs == 0 then argerr(("grid.%s must be a non-empty array of values"):format(k)) end
    for _, v in ipairs(vs) do
      local t = type(v)
      if t ~= "number" and t ~= "string" and t ~= "boolean" then
        argerr(("grid.%s holds a %s; values must be numbers, strings or booleans"):format(k, t))
      end
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local out = {{}}
  for _, k in ipairs(keys) do
    local next_out = {}
    for _, combo in ipairs(out) do
      for _, v in ipairs(grid[k]) do
        local c = {}
        for kk, vv in pairs(combo) do c[kk] = vv end
        c[k] = v
        next_out[#next_out + 1] = c
      end
    end
    out = next_out
  end
  return out, keys
end

local function safe(s) return (s:gsub("[^%w%.%-_+]", "_")) end

local function flatten(tbl, prefix, out)
  for k, v in pairs(tbl) do
    local key = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(v) == "table" then flatten(v, key, out)
    else out[key] = v end
  end
  return out
end

local function csv_cell(v)
  if v == nil then return "" end
  local s = type(v) == "number" and value_text(v) or tostring(v)
  if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function write_tables(out, rows, param_keys)
  write_file(out .. "/results.json", adept.json.encode(rows) .. "\n")
  local first = {}
  for _, k in ipairs(param_keys) do first[#first + 1] = k end
  for _, k in ipairs({"seed", "status", "exit_code", "dir"}) do first[#first + 1] = k end
  local seen, rest = {}, {}
  for _, k in ipairs(first) do seen[k] = true end
  for _, row in ipairs(rows) do
    for k in pairs(row) do if not seen[k] then seen[k] = true; rest[#rest + 1] = k end end
  end
  table.sort(rest)
  local cols = first
  for _, k in ipairs(rest) do cols[#cols + 1] = k end
  local lines = {table.concat(cols, ",")}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, k in ipairs(cols) do cells[i] = csv_cell(row[k]) end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  write_file(out .. "/results.csv", table.concat(lines, "\n") .. "\n")
end

-- ---- the Slurm launcher --------------------------------------------------------------------------
-- The runs become one job array (sbatch --array=0-(n-1)): task i runs out/slurm/run_<i>.sh, which runs the same
-- command the local launcher would, writes <run dir>/sweep.log and then <run dir>/exit_code. The sweep follows
-- the array with squeue until it has left the queue (no accounting database is needed), then reads each run's
-- exit code; a run without one did not finish (cancelled, out of time, node failure) and is reported failed
-- with the tail of its logs. Finished runs are skipped on the next call exactly as with the local launcher.
local SLURM_KEYS = {"partition", "time", "cpus_per_task", "gpus_per_task", "mem", "extra", "poll"}

local function shell(cmd) -- stdout of a command and whether it succeeded
  local p = io.popen(cmd .. " 2>&1")
  local text = p:read("a")
  local ok = p:close()
  return text, ok
end

local function tail(path, n)
  local lines = {}
  local f = io.open(path, "r")
  if not f then return "(no log)" end
  for line in f:lines() do
    lines[#lines + 1] = line
    if #lines > n then table.remove(lines, 1) end
  end
  f:close()
  return table.concat(lines, "\n")
end

local function check_slurm_options(o)
  o = o or {}
  if type(o) ~= "table" then argerr("slurm must be a table {partition=, time=, cpus_per_task=, gpus_per_task=, extra=}") end
  require("adept.options").check_keys(o, SLURM_KEYS, "adept.sweep: slurm", 4)
  for _, k in ipairs{"cpus_per_task", "gpus_per_task"} do
    if o[k] ~= nil and (math.type(o[k]) ~= "integer" or o[k] < 0) then argerr(("slurm.%s must be an integer >= 0"):format(k)) end
  end
  if o.extra ~= nil and type(o.extra) ~= "table" then argerr("slurm.extra must be an array of sbatch arguments") end
  return o
end

-- Submits the pending runs as one array, waits for it, and completes their rows; returns the number that failed.
local function run_slurm(pending, opts, so, finish_run)
  local dir = opts.out .. "/slurm"
  adept.fs.mkdir_p(dir)
  local cwd = os.getenv("PWD") or "."
  for i, p in ipairs(pending) do
    os.remove(p.dir .. "/exit_code")
    write_file(("%s/run_%d.sh"):format(dir, i - 1), table.concat({
      "#!/bin/sh", "cd " .. shell_quote(cwd),
      p.line .. " > " .. shell_quote(p.dir .. "/sweep.log") .. " 2>&1",
      "code=$?", "echo $code > " .. shell_quote(p.dir .. "/exit_code"), "exit $code", ""}, "\n"))
  end
  write_file(dir .. "/array.sh", "#!/bin/sh\nexec sh " .. shell_quote(dir) .. "/run_${SLURM_ARRAY_TASK_ID}.sh\n")
  local args = {"sbatch", "--parsable", "--job-name=adept-sweep", ("--array=0-%d"):format(#pending - 1),
                "--output=" .. shell_quote(dir .. "/task_%a.out")}
  if so.partition then args[#args + 1] = "--partition=" .. shell_quote(so.partition) end
  if so.time then args[#args + 1] = "--time=" .. shell_quote(so.time) end
  if so.mem then args[#args + 1] = "--mem=" .. shell_quote(so.mem) end
  if so.cpus_per_task then args[#args + 1] = "--cpus-per-task=" .. so.cpus_per_task end
  if so.gpus_per_task and so.gpus_per_task > 0 then args[#args + 1] = "--gpus-per-task=" .. so.gpus_per_task end
  for _, e in ipairs(so.extra or {}) do args[#args + 1] = shell_quote(e) end
  args[#args + 1] = shell_quote(dir .. "/array.sh")
  local cmd = table.concat(args, " ")
  local text, ok = shell(cmd)
  local job = text:match("^(%d+)")
  if not ok or not job then
    error(("adept.sweep: sbatch failed (%s): %s"):format(cmd, text), 0)
  end
  write_file(dir .. "/job_id", job .. "\n")
  adept.log("info", ("adept.sweep: submitted %d runs as Slurm job array %s (%s)"):format(#pending, job, cmd))
  local progress = adept.progress and adept.progress("slurm job " .. job, #pending) or nil
  local poll = so.poll or 5
  while true do
    local q = shell("squeue -h -j " .. job .. " -o %i")
    local done = 0
    for _, p in ipairs(pending) do if exists(p.dir .. "/exit_code") then done = done + 1 end end
    if progress then progress:update(done) end
    if not q:match("%d") then break end
    adept.sleep(poll)
  end
  if progress then progress:finish() end
  local failed = 0
  for i, p in ipairs(pending) do
    local f = io.open(p.dir .. "/exit_code", "r")
    local code = f and tonumber(f:read("l"))
    if f then f:close() end
    if not finish_run(p, code) then
      failed = failed + 1
      adept.log("warn", ("adept.sweep: run %s failed (%s); last lines of its logs:\n%s\n%s"):format(p.dir,
        code and ("exit " .. code) or "no exit code: cancelled, out of time or lost",
        tail(p.dir .. "/sweep.log", 5), tail(("%s/task_%d.out"):format(dir, i - 1), 3)))
    end
  end
  return failed
end

-- rows = adept.sweep{recipe=, grid={key={values}}, seeds={...} (default {0}), out=, args={fixed overrides},
--                    host= (adeptlua path), threads=, dry_run=, force=, report=,
--                    launcher="local"|"slurm", slurm={partition=, time=, cpus_per_task=, gpus_per_task=, mem=,
--                    extra={sbatch args}, poll=seconds}}
return function(opts)
  if type(opts) ~= "table" then argerr("expects a table {recipe=, grid=, seeds=, out=}") end
  require("adept.options").check_keys(opts, {"recipe", "grid", "seeds", "out", "args", "host", "threads", "dry_run",
    "force", "report", "title", "launcher", "slurm"}, "adept.sweep", 2)
  local launcher = opts.launcher or "local"
  if launcher ~= "local" and launcher ~= "slurm" then
    argerr(("launcher must be \"local\" or \"slurm\", got %q"):format(tostring(launcher)))
  end
  local slurm_opts = launcher == "slurm" and check_slurm_options(opts.slurm) or nil
  if type(opts.recipe) ~= "string" or not exists(opts.recipe) then
    argerr("recipe must name an existing recipe file, got " .. tostring(opts.recipe))
  end
  if type(opts.out) ~= "string" or opts.out == "" then argerr("out (a directory for the runs) is required") end
  local grid = opts.grid or {}
  if type(grid) ~= "table" then argerr("grid must be a table {key = {values}}") end
  local seeds = opts.seeds or {0}
  if type(seeds) ~= "table" or #seeds == 0 then argerr("seeds must be a non-empty array of integers") end
  for _, s in ipairs(seeds) do
    if math.type(s) ~= "integer" then argerr("seeds must be integers, got " .. tostring(s)) end
  end
  local fixed = opts.args or {}
  for k in pairs(fixed) do
    if grid[k] ~= nil or k == "seed" or k == "out" then argerr(("args.%s is also set by the sweep"):format(k)) end
  end
  local P = require "adept.provenance"
  local recipe_src = assert(io.open(opts.recipe, "rb")):read("a")
  local recipe_sha = adept.sha256(recipe_src)
  local combos, keys = combinations(grid)
  -- identity of one run: what it is given (overrides, seed) and what runs it (recipe source, engine version)
  local function run_identity(combo, seed)
    local given = {}
    for k, v in pairs(fixed) do given[k] = v end
    for k, v in pairs(combo) do given[k] = v end
    given.seed = seed
    return P.identity(given, {sha256 = recipe_sha}, {})
  end
  local function run_dir(combo, seed)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. safe(value_text(combo[k])) end
    parts[#parts + 1] = "seed=" .. seed
    return opts.out .. "/" .. table.concat(parts, ",")
  end
  -- before anything runs: every finished run must be this sweep's run
  for _, combo in ipairs(combos) do
    for _, seed in ipairs(seeds) do
      local dir = run_dir(combo, seed)
      local done = exists(dir .. "/" .. MARKER) and read_json(dir .. "/" .. MARKER)
      if exists(dir .. "/" .. MARKER) and not opts.force and not opts.dry_run then
        local id, idparts = run_identity(combo, seed)
        if not done or done.identity ~= id then
          local diffs = done and done.identity_parts and P.differences(idparts, done.identity_parts) or
            {"it was made by an older adept.sweep (no identity recorded)"}
          if #diffs == 0 then diffs[1] = "the identity hash differs" end
          argerr(("%s holds a finished run of another sweep (%s): pass force=true to rerun it, or choose another out=")
            :format(dir, table.concat(diffs, "; ")))
        end
      end
    end
  end
  local host = opts.dry_run and (opts.host or "adeptlua") or find_host(opts.host)
  if not opts.dry_run then adept.fs.mkdir_p(opts.out) end
  local rows, ran, skipped, failed, pending = {}, 0, 0, 0, {}
  -- a run that ended with `code`: marks it done (SWEEP_DONE with its identity) or failed; returns success
  local function finish_run(p, code)
    local row = p.row
    row.exit_code = code
    if code == 0 then
      local id, idparts = run_identity(p.combo, p.seed)
      write_file(p.dir .. "/" .. MARKER, adept.json.encode({command = p.line, seconds = row.seconds, identity = id,
        identity_parts = idparts, launcher = launcher}) .. "\n")
      row.status = "done"
      return true
    end
    row.status = "failed"
    return false
  end
  for _, combo in ipairs(combos) do
    for _, seed in ipairs(seeds) do
      local dir = run_dir(combo, seed)
      local row = {seed = seed, dir = dir}
      for _, k in ipairs(keys) do row[k] = combo[k] end
      if opts.force and not opts.dry_run and exists(dir) then adept.fs.remove_tree(dir) end
      if exists(dir .. "/" .. MARKER) then
        row.status = "skipped (done)"
        skipped = skipped + 1
      else
        if not opts.dry_run then adept.fs.mkdir_p(dir) end
        local cmd = {shell_quote(host)}
        if opts.threads then cmd[#cmd + 1] = "--threads " .. math.tointeger(opts.threads) end
        cmd[#cmd + 1] = "--seed " .. seed
        cmd[#cmd + 1] = shell_quote(opts.recipe)
        local fixed_keys = {}
        for k in pairs(fixed) do fixed_keys[#fixed_keys + 1] = k end
        table.sort(fixed_keys)
        for _, k in ipairs(fixed_keys) do cmd[#cmd + 1] = shell_quote(k .. "=" .. value_text(fixed[k])) end
        for _, k in ipairs(keys) do cmd[#cmd + 1] = shell_quote(k .. "=" .. value_text(combo[k])) end
        cmd[#cmd + 1] = shell_quote("seed=" .. seed)
        cmd[#cmd + 1] = shell_quote("out=" .. dir)
        local line = table.concat(cmd, " ")
        row.command = line
        if opts.dry_run then
          row.status = "planned"
        elseif launcher == "slurm" then
          pending[#pending + 1] = {row = row, line = line, dir = dir, combo = combo, seed = seed}
          ran = ran + 1
        else
          adept.log("info", "adept.sweep: " .. line)
          local t0 = adept.now()
          local ok, _, code = os.execute(line .. " > " .. shell_quote(dir .. "/sweep.log") .. " 2>&1")
          row.seconds = adept.now() - t0
          ran = ran + 1
          if not finish_run({row = row, line = line, dir = dir, combo = combo, seed = seed}, ok and 0 or code) then
            failed = failed + 1
            adept.log("warn", ("adept.sweep: run failed (exit %s), see %s/sweep.log"):format(tostring(code), dir))
          end
        end
      end
      rows[#rows + 1] = row
    end
  end
  if #pending > 0 then failed = failed + run_slurm(pending, opts, slurm_opts, finish_run) end
  for _, row in ipairs(rows) do -- each run's summary.json, once every run has ended
    local summary = read_json(row.dir .. "/summary.json")
    if summary then
      for k, v in pairs(flatten(summary, nil, {})) do
        if row[k] == nil then row[k] = v end
      end
    end
  end
  if not opts.dry_run then
    write_tables(opts.out, rows, keys)
    -- report.md: the results table, and per method its frontier across learning rates (seed mean ± sd)
    if opts.report ~= false then
      local ok, err = pcall(adept.report.sweep, {dir = opts.out, rows = rows, params = keys,
        title = opts.title or ("Sweep of " .. opts.recipe)})
      if not ok then adept.log("warn", "adept.sweep: report: " .. tostring(err)) end
    end
  end
  adept.log("info", ("adept.sweep: %d runs: %d ran (%d failed), %d already done"):format(#rows, ran, failed, skipped))
  return rows, {ran = ran, skipped = skipped, failed = failed}
end
