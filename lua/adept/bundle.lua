-- adept.bundle: `adeptlua pack | run | verify | inspect`, experiment bundles (docs/sharing.md). A bundle is a tar +
-- zstd archive (engine/io/bundle.c) holding manifest.json, the recipe and its local Lua modules under recipe/, and
-- optionally results/ (a finished run's JSON outputs, for verify) and inputs/ (the input files themselves).
--
-- Choices: inputs are the key=value options whose value names an existing file or folder when packing (out= is the
-- output folder, never an input); each input file is identified by sha256 and size. `run` looks for each file
-- where it was when packed, among the bundle's own inputs/, then in every --data folder (recursively, candidates
-- of the right size first), stages what it found as symbolic links under <out>/.adept/inputs/<option>/ and runs
-- the recipe in a child adeptlua, sandboxed unless --trust, reading only those files. Local modules are found by
-- scanning the recipe (and each module found) for require "name" with a name that resolves beside the recipe.
local adept = require "adept"

local M = {}

local FORMAT, VERSION = "adeptlua-bundle", 1
local DEFAULT_MAX_BYTES = 64 * 1024 * 1024
local RESULT_EXT = {json = true, jsonl = true, md = true, csv = true, txt = true}
-- Result fields that measure time, not the experiment: reported, never compared.
local TIMING = {"time", "seconds", "per_s", "per_sec", "elapsed", "wall", "date", "started", "finished", "_at$",
                "throughput", "tokens_per"}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function fail(msg) error(msg, 0) end

local function read_all(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function basename(p) return (p:gsub("/+$", ""):match("([^/]+)$")) end
local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD")
  local h = io.popen("pwd")
  if h then pwd = h:read("l") or pwd; h:close() end
  return (pwd or ".") .. "/" .. p:gsub("^%./", "")
end

-- Every regular file below `dir` (relative paths, sorted), following no more than 16 levels.
local function walk(dir, rel, out, depth)
  out = out or {}
  if (depth or 0) > 16 then return out end
  local names = adept.fs.list(dir)
  for _, n in ipairs(names) do
    local full, r = dir .. "/" .. n, rel and (rel .. "/" .. n) or n
    local kind = adept.fs.exists(full)
    if kind == "directory" then walk(full, r, out, (depth or 0) + 1)
    elseif kind == "file" then out[#out + 1] = r end
  end
  return out
end

-- key=value words -> ordered list of {key, value} (raw strings, typed again by the child host).
local function split_words(words, first, handlers)
  local opts, order = {}, {}
  local i = first
  while i <= #words do
    local w = words[i]
    local h = handlers[w]
    if h then
      if h.arg then
        if i == #words then fail(("adeptlua: option '%s' needs an argument"):format(w)) end
        h.fn(words[i + 1]); i = i + 1
      else h.fn() end
    elseif w:match("^[^=]+=") then
      local k, v = w:match("^([^=]+)=(.*)$")
      if opts[k] == nil then order[#order + 1] = k end
      opts[k] = v
    elseif w:sub(1, 1) == "-" then
      local names = {}
      for name in pairs(handlers) do names[#names + 1] = name end
      table.sort(names)
      local hint = adept.suggest(w, names)
      fail(("adeptlua: unknown option '%s'%s (options here: %s; adeptlua --help)"):format(w,
        hint and (" — did you mean '%s'?"):format(hint) or "", table.concat(names, ", ")))
    else fail(("adeptlua: expected key=value, got '%s'"):format(w)) end
    i = i + 1
  end
  return opts, order
end

-- ---- pack --------------------------------------------------------------------------------------------------------

-- Local modules the recipe requires, transitively: {module=, file=, member=}.
local function local_modules(recipe)
  local root, found, list = dirname(recipe), {}, {}
  local function scan(file)
    local text = read_all(file) or ""
    for name in text:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
      if not found[name] and name ~= "adept" and not name:match("^adept%.") then
        local rel = name:gsub("%.", "/")
        for _, cand in ipairs{rel .. ".lua", rel .. "/init.lua"} do
          if adept.fs.exists(root .. "/" .. cand) == "file" then
            found[name] = true
            list[#list + 1] = {module = name, file = root .. "/" .. cand, member = "recipe/" .. cand}
            scan(root .. "/" .. cand)
            break
          end
        end
      end
    end
  end
  scan(recipe)
  return list
end

local function hashed(path)
  local sha, size = adept.fs.sha256(path)
  return sha, size
end

function M.pack(words, settings)
  local out, results, with_inputs, max_bytes
  local recipe = words[2]
  if not recipe or recipe:match("=") or recipe:sub(1, 1) == "-" then
    fail("adeptlua pack: usage: adeptlua pack recipe.lua [key=value ...] -o exp.adept [--results DIR] [--inputs]")
  end
  local opts, order = split_words(words, 3, {
    ["-o"] = {arg = true, fn = function(v) out = v end},
    ["--results"] = {arg = true, fn = function(v) results = v end},
    ["--inputs"] = {fn = function() with_inputs = true end},
    ["--max-bytes"] = {arg = true, fn = function(v) max_bytes = math.tointeger(tonumber(v)) or
      fail("adeptlua pack: --max-bytes expects a whole number of bytes, got '" .. v .. "'") end},
  })
  if not out then fail("adeptlua pack: give the bundle's file name with -o exp.adept") end
  if adept.fs.exists(recipe) ~= "file" then fail("adeptlua pack: recipe " .. recipe .. " not found") end
  max_bytes = max_bytes or DEFAULT_MAX_BYTES

  local members, total = {}, 0
  local function add(m)
    members[#members + 1] = m
  end
  local rsha, rsize = hashed(recipe)
  local manifest = {
    format = FORMAT, version = VERSION, created_by = "adeptlua " .. adept.version(),
    recipe = {name = basename(recipe), member = "recipe/" .. basename(recipe), sha256 = rsha, size = rsize},
    modules = {}, options = {}, option_order = {}, inputs = {}, results = {},
    threads = settings.threads or adept.threads(), seed = settings.seed or 0,
  }
  add{name = manifest.recipe.member, file = recipe}
  for _, mod in ipairs(local_modules(recipe)) do
    local sha, size = hashed(mod.file)
    manifest.modules[#manifest.modules + 1] = {module = mod.module, member = mod.member, sha256 = sha, size = size}
    add{name = mod.member, file = mod.file}
  end
  for _, k in ipairs(order) do
    local v = opts[k]
    local kind = k ~= "out" and adept.fs.exists(v)
    if k == "out" then
      manifest.out = v -- as the packed run saw it (its results may name it); a run gets its own
    elseif kind then
      local input = {option = k, kind = kind == "directory" and "dir" or "file", origin = absolute(v), value = v,
                     files = {}}
      local rels = kind == "directory" and walk(v) or {basename(v)}
      for _, rel in ipairs(rels) do
        local path = kind == "directory" and (v .. "/" .. rel) or v
        local sha, size = hashed(path)
        local f = {path = rel, sha256 = sha, size = size}
        if with_inputs then
          f.member = ("inputs/%s/%s"):format(k, rel)
          total = total + size
          add{name = f.member, file = path}
        end
        input.files[#input.files + 1] = f
      end
      manifest.inputs[#manifest.inputs + 1] = input
    else
      manifest.options[k] = v
      manifest.option_order[#manifest.option_order + 1] = k
    end
  end
  if results then
    if adept.fs.exists(results) ~= "directory" then fail("adeptlua pack: --results " .. results .. " is not a folder") end
    for _, rel in ipairs(walk(results)) do
      local ext = rel:match("%.([%w]+)$")
      if ext and RESULT_EXT[ext] and not rel:match("^%.") and not rel:match("/%.") then
        local sha, size = hashed(results .. "/" .. rel)
        total = total + size
        manifest.results[#manifest.results + 1] = {path = rel, member = "results/" .. rel, sha256 = sha, size = size}
        add{name = "results/" .. rel, file = results .. "/" .. rel}
      end
    end
  end
  if total > max_bytes then
    fail(("adeptlua pack: the results and inputs to include add up to %d bytes, over the limit of %d " ..
          "(--max-bytes N raises it; without --inputs the inputs stay out and are found by hash)"):format(total, max_bytes))
  end
  table.insert(members, 1, {name = "manifest.json", data = adept.json.encode(manifest, {pretty = true}) .. "\n"})
  adept._bundle.write(out, members)
  print(("packed %s: %s, %d module(s), %d input(s)%s, %d result file(s)"):format(out, manifest.recipe.name,
    #manifest.modules, #manifest.inputs, with_inputs and " (included)" or "", #manifest.results))
  return 0
end

-- ---- reading a bundle --------------------------------------------------------------------------------------------

local function read_manifest(path)
  if adept.fs.exists(path) ~= "file" then fail("adeptlua: bundle " .. path .. " not found") end
  adept._bundle.list(path) -- every member checked before anything is trusted
  local text = adept._bundle.member(path, "manifest.json")
  if not text then fail("adeptlua: " .. path .. " has no manifest.json (not an adeptlua bundle?)") end
  local ok, m = pcall(adept.json.decode, text)
  if not ok or type(m) ~= "table" or m.format ~= FORMAT then
    fail("adeptlua: " .. path .. ": manifest.json is not an adeptlua bundle manifest")
  end
  if m.version ~= VERSION then
    fail(("adeptlua: %s: bundle format version %s, this adeptlua reads version %d"):format(path, tostring(m.version), VERSION))
  end
  return m
end

local function short(sha) return sha and sha:sub(1, 16) or "?" end

function M.inspect(words)
  local path = words[2] or fail("adeptlua inspect: usage: adeptlua inspect exp.adept [--json]")
  local m = read_manifest(path)
  if words[3] == "--json" then print(adept._bundle.member(path, "manifest.json")) return 0 end
  print(("bundle   %s (%s, format %d)"):format(path, m.created_by or "?", m.version))
  print(("recipe   %s  sha256 %s  %d bytes"):format(m.recipe.name, m.recipe.sha256, m.recipe.size))
  for _, mod in ipairs(m.modules or {}) do
    print(("module   %s (%s)  sha256 %s  %d bytes"):format(mod.module, mod.member, mod.sha256, mod.size))
  end
  print(("run      threads %s, seed %s"):format(tostring(m.threads), tostring(m.seed)))
  for _, k in ipairs(m.option_order or {}) do print(("option   %s=%s"):format(k, m.options[k])) end
  if m.out then print(("output   out=%s when packed (a run writes to its own --out)"):format(m.out)) end
  for _, input in ipairs(m.inputs or {}) do
    print(("input    %s (%s, %d file(s), packed from %s)"):format(input.option, input.kind, #input.files, input.origin))
    for _, f in ipairs(input.files) do
      print(("           %s  sha256 %s  %d bytes%s"):format(f.path, f.sha256, f.size, f.member and "  (included)" or ""))
    end
  end
  for _, r in ipairs(m.results or {}) do
    print(("result   %s  sha256 %s  %d bytes"):format(r.path, r.sha256, r.size))
  end
  return 0
end

-- ---- finding inputs ------------------------------------------------------------------------------------------------

-- Index of the --data folders: size -> paths, file name -> paths; hashes cached by path.
local function data_index(dirs)
  local by_size, by_name, hashes = {}, {}, {}
  for _, d in ipairs(dirs) do
    if adept.fs.exists(d) ~= "directory" then fail("adeptlua: --data " .. d .. " is not a folder") end
    for _, rel in ipairs(walk(d)) do
      local p = d .. "/" .. rel
      local f = io.open(p, "rb")
      if f then
        local size = f:seek("end")
        f:close()
        by_size[size] = by_size[size] or {}
        table.insert(by_size[size], p)
        by_name[basename(p)] = by_name[basename(p)] or {}
        table.insert(by_name[basename(p)], p)
      end
    end
  end
  local function hash(p)
    if not hashes[p] then hashes[p] = {adept.fs.sha256(p)} end
    return hashes[p][1], hashes[p][2]
  end
  return by_size, by_name, hash
end

-- Finds every input file; returns {option -> staged path}, the list of files found (to declare readable), or
-- raises one error naming every file that is missing or mismatched.
local function find_inputs(m, bundle_dir, data_dirs, stage_dir)
  local by_size, by_name, hash = data_index(data_dirs)
  local staged, found, problems = {}, {}, {}
  for _, input in ipairs(m.inputs or {}) do
    local base = stage_dir .. "/" .. input.option
    for _, f in ipairs(input.files) do
      local looked, near = {}, {}
      local function try(p)
        if not p or adept.fs.exists(p) ~= "file" then return false end
        local sha, size = hash(p)
        if sha == f.sha256 and size == f.size then return true end
        if basename(p) == basename(f.path) then near[#near + 1] = ("%s has sha256 %s (%d bytes)"):format(p, sha, size) end
        return false
      end
      local where
      local origin = input.kind == "dir" and (input.origin .. "/" .. f.path) or input.origin
      looked[#looked + 1] = "where it was packed (" .. origin .. ")"
      if try(origin) then where = origin end
      if not where and f.member then
        looked[#looked + 1] = "the bundle"
        if try(bundle_dir .. "/" .. f.member) then where = bundle_dir .. "/" .. f.member end
      end
      if not where then
        for _, p in ipairs(by_size[f.size] or {}) do
          if try(p) then where = p break end
        end
        -- a file of the same name but other contents is a mismatch worth naming
        for _, p in ipairs(not where and by_name[basename(f.path)] or {}) do try(p) end
        if #data_dirs > 0 then looked[#looked + 1] = "--data " .. table.concat(data_dirs, ", ") end
      end
      if where then
        local target = absolute(where)
        found[#found + 1] = target
        local link = base .. "/" .. (input.kind == "dir" and f.path or basename(f.path))
        adept.fs.mkdir_p(dirname(link))
        adept._bundle.link(target, link)
      else
        local seen = {}
        local uniq = {}
        for _, n in ipairs(near) do if not seen[n] then seen[n] = true; uniq[#uniq + 1] = n end end
        problems[#problems + 1] = ("  %s: %s (sha256 %s, %d bytes): %s; looked in %s%s"):format(
          input.option, f.path, f.sha256, f.size, #uniq > 0 and "mismatched" or "missing",
          table.concat(looked, ", "), #uniq > 0 and ("; found instead: " .. table.concat(uniq, "; ")) or
          (#data_dirs == 0 and " (give --data DIR where the file is)" or ""))
      end
    end
    staged[input.option] = input.kind == "dir" and base or (base .. "/" .. basename(input.files[1].path))
  end
  if #problems > 0 then
    fail(("adeptlua: %d input file(s) of the bundle not found:\n%s"):format(#problems, table.concat(problems, "\n")))
  end
  return staged, found
end

-- ---- running -----------------------------------------------------------------------------------------------------

-- Extracts, finds inputs and runs the recipe into `out`; returns the child's exit status.
local function run_into(exe, path, m, out, data_dirs, overrides, override_order, trust, settings)
  adept.fs.mkdir_p(out)
  local work = out .. "/.adept"
  adept.fs.remove_tree(work) -- ours from an earlier run: the bundle and staged links are recreated
  adept.fs.mkdir_p(work)
  local bundle_dir = work .. "/bundle"
  adept._bundle.extract(path, bundle_dir)
  local staged, found = find_inputs(m, bundle_dir, data_dirs, work .. "/inputs")
  local cmd = {q(exe)}
  if not trust then cmd[#cmd + 1] = "--sandbox" end
  cmd[#cmd + 1] = "--out " .. q(out)
  for _, f in ipairs(found) do cmd[#cmd + 1] = "--read " .. q(f) end
  cmd[#cmd + 1] = "--threads " .. q(settings.threads or m.threads or 0)
  cmd[#cmd + 1] = "--seed " .. q(settings.seed or m.seed or 0)
  if settings.device then cmd[#cmd + 1] = "--device " .. q(settings.device) end
  if settings.precision then cmd[#cmd + 1] = "--precision " .. q(settings.precision) end
  if settings.quiet then cmd[#cmd + 1] = "-q" end
  cmd[#cmd + 1] = q(bundle_dir .. "/" .. m.recipe.member)
  local args, order = {}, {}
  local function set(k, v) if args[k] == nil then order[#order + 1] = k end; args[k] = v end
  for _, k in ipairs(m.option_order or {}) do set(k, m.options[k]) end
  for k, v in pairs(staged) do set(k, v) end
  if m.out then set("out", out) end -- the packed run took out=; otherwise --out alone tells the recipe (adept.args.out)
  for _, k in ipairs(override_order) do set(k, overrides[k]) end
  table.sort(order)
  for _, k in ipairs(order) do cmd[#cmd + 1] = q(k .. "=" .. args[k]) end
  local line = table.concat(cmd, " ")
  adept.log("info", ("adeptlua: running %s %s into %s"):format(m.recipe.name, trust and "trusted" or "sandboxed", out))
  local ok, how, code = os.execute(line)
  if ok then return 0, staged end
  return how == "exit" and code or 1, staged
end

local function run_options(words, usage)
  local path = words[2]
  if not path or path:match("=") or path:sub(1, 1) == "-" then fail(usage) end
  local s = {data = {}}
  s.overrides, s.order = split_words(words, 3, {
    ["--data"] = {arg = true, fn = function(v) s.data[#s.data + 1] = v end},
    ["--out"] = {arg = true, fn = function(v) s.out = v end},
    ["--trust"] = {fn = function() s.trust = true end},
    ["--tol"] = {arg = true, fn = function(v) s.tol = tonumber(v) or fail("adeptlua: --tol expects a number") end},
  })
  return path, s
end

function M.run(words, settings, exe)
  local path, s = run_options(words,
    "adeptlua run: usage: adeptlua run exp.adept [--data DIR ...] [--out DIR] [--trust] [key=value ...]")
  local m = read_manifest(path)
  local out = s.out or (basename(path):gsub("%.adept$", "") .. ".run")
  return run_into(exe, path, m, out, s.data, s.overrides, s.order, s.trust, settings)
end

-- ---- verifying ---------------------------------------------------------------------------------------------------

local function is_timing(key)
  local k = key:lower()
  for _, p in ipairs(TIMING) do if k:find(p) then return true end end
  return false
end

-- Flattens the numbers, strings and booleans of a JSON value into metric -> value ("a.b.1.c").
local function flatten(v, prefix, out)
  if type(v) == "table" then
    for k, x in pairs(v) do flatten(x, prefix and (prefix .. "." .. tostring(k)) or tostring(k), out) end
  else
    out[prefix or "(value)"] = v
  end
  return out
end

-- metric -> array of values: JSON files by key path, JSON Lines by key path across lines (a jsonl "loss" collects
-- every line's loss in order; lines are matched by position).
local function metrics_of(path, text)
  local out = {}
  local function add(k, v) out[k] = out[k] or {}; table.insert(out[k], v) end
  if path:match("%.jsonl$") then
    for line in text:gmatch("[^\n]+") do
      local ok, v = pcall(adept.json.decode, line)
      if ok then
        local tag = type(v) == "table" and (v.type or v.event) or nil
        for k, x in pairs(flatten(v, nil, {})) do add((tag and (tostring(tag) .. ":") or "") .. k, x) end
      end
    end
  else
    local ok, v = pcall(adept.json.decode, text)
    if ok then for k, x in pairs(flatten(v, nil, {})) do add(k, x) end end
  end
  return out
end

-- "bitwise" when every value is identical, "within tolerance" when numbers differ by at most tol relative to the
-- larger magnitude, otherwise "differs"; also the largest relative difference. `same_string` says whether two
-- strings are equal once the re-run's output folder is read as the original one.
local function compare(a, b, tol, same_string)
  if #a ~= #b then return "differs", ("%d values stored, %d now"):format(#a, #b) end
  local worst, verdict = 0, "bitwise"
  for i = 1, #a do
    local x, y = a[i], b[i]
    if x ~= y then
      if type(x) == "number" and type(y) == "number" then
        local rel = math.abs(x - y) / math.max(math.abs(x), math.abs(y))
        if not (rel <= worst) then worst = rel end -- NaN-safe: a NaN makes worst NaN
        if not (rel <= tol) then verdict = "differs" elseif verdict == "bitwise" then verdict = "within tolerance" end
      elseif not (type(x) == "string" and type(y) == "string" and same_string(x, y)) then
        return "differs", ("%s stored, %s now"):format(tostring(x), tostring(y))
      end
    end
  end
  return verdict, worst > 0 and ("max relative difference %.3g"):format(worst) or ""
end

function M.verify(words, settings, exe)
  local path, s = run_options(words,
    "adeptlua verify: usage: adeptlua verify exp.adept [--data DIR ...] [--out DIR] [--tol T] [key=value ...]")
  local m = read_manifest(path)
  if #(m.results or {}) == 0 then
    fail("adeptlua verify: " .. path .. " holds no results to compare with (pack it with --results DIR)")
  end
  -- float32 training is deterministic for a given thread count and binary; across those, sums are reordered and
  -- the rounding of ~1e-7 per operation compounds over steps. 1e-4 relative is the tolerance of the parity tests.
  local tol = s.tol or 1e-4
  -- the re-run's output folder gets the original's name: recipes name runs after their folder
  local out, temp = s.out, nil
  if not out then
    temp = os.tmpname()
    os.remove(temp)
    temp = temp .. ".verify"
    out = temp .. "/" .. (m.out and basename(m.out) or "out")
  end
  out = absolute(out)
  local function replace_all(y, from, to)
    local i, j = y:find(from, 1, true)
    while i do
      y = y:sub(1, i - 1) .. to .. y:sub(j + 1)
      i, j = y:find(from, i + #to, true)
    end
    return y
  end
  local status, staged = run_into(exe, path, m, out, s.data, s.overrides, s.order, s.trust, settings)
  -- a string of the re-run equals the stored one once the paths the re-run was given (staged inputs, its output
  -- folder) read as the ones the packed run was given (the options as typed, its out=)
  local function same_string(x, y)
    for _, input in ipairs(m.inputs or {}) do
      local given = staged and staged[input.option]
      if given then y = replace_all(y, given, input.value or input.origin) end
    end
    if m.out then y = replace_all(y, out, m.out) end
    return x == y
  end
  if status ~= 0 then
    fail(("adeptlua verify: the recipe failed (exit %d); its output folder is %s"):format(status, out))
  end
  local counts = {bitwise = 0, ["within tolerance"] = 0, differs = 0}
  print(("verify %s: %s re-run with %s thread(s), seed %s, tolerance %g (relative)"):format(path, m.recipe.name,
    tostring(settings.threads or m.threads), tostring(settings.seed or m.seed), tol))
  for _, r in ipairs(m.results) do
    local stored = assert(adept._bundle.member(path, r.member))
    local now = read_all(out .. "/" .. r.path)
    if not now then
      print(("  %-40s missing: the re-run wrote no %s"):format(r.path, r.path))
      counts.differs = counts.differs + 1
    elseif r.path:match("run%.json$") then
      print(("  %-50s not compared (provenance: paths, times, command line)"):format(r.path))
    elseif r.path:match("checkpoints/[^/]+/manifest%.json$") then
      -- the checksums cover trainer_state.safetensors, whose metadata records the elapsed time
      print(("  %-50s not compared (integrity record: hashes files that hold timings)"):format(r.path))
    elseif r.path:match("%.jsonl?$") then
      local a, b = metrics_of(r.path, stored), metrics_of(r.path, now)
      local keys = {}
      for k in pairs(a) do keys[#keys + 1] = k end
      for k in pairs(b) do if a[k] == nil then keys[#keys + 1] = k end end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local name = r.path .. ": " .. k
        if is_timing(k) then
          print(("  %-50s not compared (timing)"):format(name))
        else
          local verdict, detail = compare(a[k] or {}, b[k] or {}, tol, same_string)
          counts[verdict] = counts[verdict] + 1
          print(("  %-50s %s%s"):format(name, verdict, detail ~= "" and (" (" .. detail .. ")") or ""))
        end
      end
    else
      print(("  %-50s %s (not a metric file, not counted)"):format(r.path, stored == now and "same bytes" or "different bytes"))
    end
  end
  print(("verdict: %d bitwise, %d within tolerance, %d differ"):format(counts.bitwise, counts["within tolerance"],
    counts.differs))
  if temp then adept.fs.remove_tree(temp) end
  return counts.differs == 0 and 0 or 1
end

-- ---- entry ---------------------------------------------------------------------------------------------------------

function M.main(exe, words, settings)
  local cmd = words[1]
  local ok, rc = pcall(function()
    if cmd == "pack" then return M.pack(words, settings)
    elseif cmd == "inspect" then return M.inspect(words)
    elseif cmd == "run" then return M.run(words, settings, exe)
    elseif cmd == "verify" then return M.verify(words, settings, exe) end
    fail("adeptlua: unknown command " .. tostring(cmd))
  end)
  if not ok then
    io.stderr:write(tostring(rc), "\n")
    return type(rc) == "string" and rc:match("usage:") and 2 or 1
  end
  return rc
end

return M
