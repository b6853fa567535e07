-- Provenance of a run: run.json beside its results (resolved options, command line, the recipe copied and hashed,
-- the Lua modules it loaded, sha256 and size of every input file, engine version and commit, threads, seed, CPU,
-- BLAS kernels, start and end times, the result summary) and the run's identity, which decides whether an
-- existing out= directory holds this run (skip or resume it) or another one (an error naming what differs).
--
-- Choices: the identity hashes the options that change results (not out=, force=, progress=, report=), the
-- recipe's source, the sources of the non-library Lua modules it loaded, and the engine version -- not the git
-- commit (recorded, but a rebuild at a new commit does not invalidate finished runs). Input files are hashed
-- once and cached by absolute path, size and mtime in $ADEPT_HASH_CACHE (default $XDG_CACHE_HOME/adept or
-- ~/.cache/adept, file sha256.json); an unwritable cache only costs re-hashing.
local adept = require "adept"

local M = {}

M.NOT_IDENTITY = {out = true, force = true, progress = true, report = true, name = true}

local function now_iso() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

-- ---- hashing input files, cached -------------------------------------------------------------------------

local function cache_path()
  local explicit = os.getenv("ADEPT_HASH_CACHE")
  if explicit and explicit ~= "" then return explicit end
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil end
    base = home .. "/.cache"
  end
  return base .. "/adept/sha256.json"
end

local cache, cache_dirty = nil, false

local function load_cache()
  if cache then return cache end
  local p = cache_path()
  local v = p and adept.fs.exists(p) and adept.json.read(p)
  cache = type(v) == "table" and v or {}
  return cache
end

local function save_cache()
  if not cache_dirty then return end
  local p = cache_path()
  if not p then return end
  local ok = pcall(function()
    adept.fs.mkdir_p(p:match("^(.*)/[^/]*$"))
    adept.json.write(p, cache)
  end)
  if not ok then adept.log("debug", "adept.provenance: cannot write the hash cache " .. p) end
  cache_dirty = false
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local pwd = os.getenv("PWD")
  return pwd and (pwd .. "/" .. path:gsub("^%./", "")) or path
end

-- {path=, sha256=, size=} of one regular file (cached by absolute path, size and mtime).
function M.hash_file(path)
  local st, err = adept.fs.stat(path)
  if not st then error("adept.provenance: " .. err, 2) end
  local c = load_cache()
  local key = absolute(path)
  local hit = c[key]
  if hit and hit.size == st.size and hit.mtime == st.mtime and type(hit.sha256) == "string" then
    return {path = path, sha256 = hit.sha256, size = st.size}
  end
  local hex, size = adept.fs.sha256(path)
  c[key] = {size = size, mtime = st.mtime, sha256 = hex}
  cache_dirty = true
  return {path = path, sha256 = hex, size = size}
end

-- Every regular file of `paths` (strings or arrays of strings; a directory contributes its regular files,
-- not recursing), hashed, in a stable order, each once.
function M.hash_inputs(paths)
  local files, seen = {}, {}
  local function add(p)
    if type(p) == "table" then for _, x in ipairs(p) do add(x) end return end
    if type(p) ~= "string" or seen[p] then return end
    seen[p] = true
    local st = adept.fs.stat(p)
    if not st then return end
    if st.type == "directory" then
      local names = adept.fs.list(p)
      table.sort(names)
      for _, n in ipairs(names) do
        local full = p:gsub("/+$", "") .. "/" .. n
        local s2 = adept.fs.stat(full)
        if s2 and s2.type == "file" and not seen[full] then seen[full] = true; files[#files + 1] = full end
      end
    elseif st.type == "file" then
      files[#files + 1] = p
    end
  end
  add(paths)
  local out = {}
  for i, f in ipairs(files) do out[i] = M.hash_file(f) end
  save_cache()
  return out
end

-- ---- the recipe and the modules it loaded ----------------------------------------------------------------

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- {path=, sha256=, source=} of the running recipe (arg[0]), or nil under -e / a plain Lua interpreter.
function M.recipe()
  local path = arg and arg[0]
  local src = type(path) == "string" and read_all(path)
  if not src then return nil end
  return {path = path, sha256 = adept.sha256(src), size = #src, source = src}
end

-- The Lua modules loaded from files (not the embedded adept library, not C modules), sorted by name.
function M.modules()
  local out = {}
  for name in pairs(package.loaded) do
    if type(name) == "string" and name ~= "adept" and not name:match("^adept%.") then
      local path = package.searchpath(name, package.path)
      local src = path and read_all(path)
      if src then out[#out + 1] = {name = name, path = path, sha256 = adept.sha256(src)} end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- ---- identity ------------------------------------------------------------------------------------------

-- Options as JSON-able values: functions become "<function>" (the recipe's hash covers their source).
local function plain(v)
  if type(v) == "function" then return "<function>" end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    local t = {}
    for k, x in pairs(v) do t[k] = plain(x) end
    return t
  end
  return v
end
M.plain = plain

-- parts = {options=, recipe=sha256, modules={name -> sha256}, engine=version}; hash = sha256 of their JSON
-- (adept.json sorts object keys, so the text is canonical).
function M.identity(options, recipe, modules)
  local opts = {}
  for k, v in pairs(options) do if not M.NOT_IDENTITY[k] then opts[k] = plain(v) end end
  local mods = {}
  for _, m in ipairs(modules or {}) do mods[m.name] = m.sha256 end
  local parts = {options = opts, recipe = recipe and recipe.sha256 or "none", modules = mods,
                 engine = adept.version()}
  return adept.sha256(adept.json.encode(parts)), parts
end

local function show(v)
  if type(v) == "table" then return adept.json.encode(v) end
  if type(v) == "string" then return "'" .. v .. "'" end
  return tostring(v)
end

-- Equal as JSON values: 1 and 1.0 are the same number once read back from run.json.
local function same(a, b)
  if type(a) == "number" and type(b) == "number" then return a == b end
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  return a == b
end

-- What differs between two identity parts, as a readable list ("lr: 0.001 here, 0.004 in out=").
function M.differences(here, there)
  local diffs = {}
  local keys, seen = {}, {}
  for k in pairs(here.options or {}) do if not seen[k] then seen[k] = true; keys[#keys + 1] = k end end
  for k in pairs(there.options or {}) do if not seen[k] then seen[k] = true; keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local a, b = (here.options or {})[k], (there.options or {})[k]
    if not same(a, b) then diffs[#diffs + 1] = ("%s: %s here, %s there"):format(k, show(a), show(b)) end
  end
  if here.recipe ~= there.recipe then diffs[#diffs + 1] = "the recipe's source changed" end
  local mk, mseen = {}, {}
  for k in pairs(here.modules or {}) do mseen[k] = true; mk[#mk + 1] = k end
  for k in pairs(there.modules or {}) do if not mseen[k] then mk[#mk + 1] = k end end
  table.sort(mk)
  for _, k in ipairs(mk) do
    if (here.modules or {})[k] ~= (there.modules or {})[k] then diffs[#diffs + 1] = ("module %s changed"):format(k) end
  end
  if here.engine ~= there.engine then
    diffs[#diffs + 1] = ("engine version %s here, %s there"):format(tostring(here.engine), tostring(there.engine))
  end
  return diffs
end

-- ---- run.json ------------------------------------------------------------------------------------------

-- The command line as the host received it (lua.c's convention: arg[-n..-1] the host and its options).
local function command_line()
  if type(arg) ~= "table" then return nil end
  local lo = 0
  while arg[lo - 1] ~= nil do lo = lo - 1 end
  local words = {}
  for i = lo, #arg do words[#words + 1] = tostring(arg[i]) end
  return words
end

-- Checks `out` against this run before any work: returns "new", "resume" (same identity, unfinished) or
-- "finished" (same identity, summary present); raises naming the differences otherwise. force=true clears.
function M.check_out(out, id, parts, fname, has_results)
  local prev = adept.fs.exists(out .. "/run.json") and adept.json.read(out .. "/run.json") or nil
  if type(prev) ~= "table" then
    if has_results then
      error(("%s: %s holds results without a run.json (made by an older adeptlua, or by hand): pass force=true to "
        .. "replace them, or choose another out="):format(fname, out), 0)
    end
    return "new"
  end
  if prev.identity ~= id then
    local diffs = M.differences(parts, prev.identity_parts or {})
    if #diffs == 0 then diffs[1] = "the identity hash differs" end
    error(("%s: %s holds a different run (%s): pass force=true to replace it, or choose another out="):format(
      fname, out, table.concat(diffs, "; ")), 0)
  end
  return prev.finished and "finished" or "resume", prev
end

-- rec = M.start{out=, options=, inputs={paths...}, fname=}: writes out/run.json (status "running") and a copy
-- of the recipe (out/recipe.lua); returns the record for M.finish.
function M.start(spec)
  local recipe = spec.recipe or M.recipe()
  local modules = spec.modules or M.modules()
  local id, parts = spec.identity, spec.identity_parts
  if not id then id, parts = M.identity(spec.options, recipe, modules) end
  local info = adept.build_info()
  local rec = {
    identity = id, identity_parts = parts, status = "running",
    options = plain(spec.options), command_line = command_line(),
    recipe = recipe and {path = recipe.path, sha256 = recipe.sha256, size = recipe.size, copy = "recipe.lua"} or nil,
    modules = modules, inputs = M.hash_inputs(spec.inputs or {}),
    engine = {version = info.version, commit = info.commit, lua = info.lua},
    machine = {cpu = info.cpu, isa = info.isa, blas_core = info.blas_core, threads = adept.threads(),
               ranks = adept.dist.world_size(), dist = adept.dist.backend(),
               openblas_coretype = os.getenv("OPENBLAS_CORETYPE"),
               -- how frozen bf16 weights are multiplied here (docs/model.md "Precision"): it changes the numbers
               bf16_products = adept.w16_products()},
    seed = spec.options and spec.options.seed or adept.seed,
    started = now_iso(), started_clock = adept.now(),
  }
  adept.fs.mkdir_p(spec.out)
  if recipe then
    local f = assert(io.open(spec.out .. "/recipe.lua", "wb"))
    f:write(recipe.source)
    f:close()
  end
  rec.out = nil
  adept.json.write(spec.out .. "/run.json", rec, {pretty = true})
  rec._out = spec.out
  return rec
end

-- Completes run.json with the end time and the result summary.
function M.finish(rec, summary)
  local out = rec._out
  rec._out = nil
  rec.status, rec.finished = "finished", now_iso()
  rec.seconds = adept.now() - rec.started_clock
  rec.started_clock = nil
  rec.result = plain(summary)
  adept.json.write(out .. "/run.json", rec, {pretty = true})
  rec._out = out
  return rec
end

return M
