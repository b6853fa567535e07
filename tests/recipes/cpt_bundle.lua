-- Recipe test: an adept.cpt recipe (declared options, run.json provenance, a local module) runs under --sandbox
-- with the same numbers as a trusted run, and a bundle of it packs, inspects, runs and verifies bitwise at the
-- same thread count (issue 14 points 4 and 5 on a real model). 77 without ../shared.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local exe = assert(os.getenv("ADEPTLUA"), "ADEPTLUA is not set: run through ctest")
local root = os.tmpname()
os.remove(root)
root = root .. "-cpt-bundle"
adept.fs.mkdir_p(root .. "/recipe")
local env = "ADEPT_HASH_CACHE=" .. root .. "/sha256.json " -- never the user's hash cache

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function run(cmd)
  local p = assert(io.popen(env .. cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok == true, code
end
local function write(path, text) local f = assert(io.open(path, "wb")); f:write(text); f:close() end
local function read(path) local f = assert(io.open(path, "rb"), "missing " .. path); local s = f:read("a"); f:close(); return s end
local function check(cond, msg, out) if not cond then error(msg .. (out and ("\n--- output:\n" .. out) or ""), 2) end end

-- the recipe takes its LR schedule from a module beside it: the bundle must carry it, the sandbox must load it
local recipe = root .. "/recipe/adept_run.lua"
write(recipe, 'local cpt = require "adept.cpt"\nlocal s = require "my_schedule"\ncpt.main("adept", {schedule = s})\n')
write(root .. "/recipe/my_schedule.lua", "return function(step, total) return 1 - 0.5 * step / total end\n")
local common = ("model=%s general=%s domain=%s k=2 steps=4 refresh=2 seq_len=16 batch_size=2 probe_batches=1 "
  .. "eval_batches=1 shift_batches=1 max_documents=60 progress=false report=false"):format(q(model),
  q(shared .. "/corpora/tinystories_val.txt"), q(shared .. "/corpora/medquad.txt.gz"))

-- 1. trusted and sandboxed runs give the same numbers; the sandboxed one writes only under its output folder
local out, ok = run(("%s --threads 2 -q %s %s out=%s"):format(exe, q(recipe), common, q(root .. "/a")))
check(ok, "the trusted run failed", out)
out, ok = run(("%s --threads 2 -q --sandbox %s %s out=%s"):format(exe, q(recipe), common, q(root .. "/sb")))
check(ok, "the sandboxed run failed", out)
local a = adept.json.decode(read(root .. "/a/summary.json"))
local sb = adept.json.decode(read(root .. "/sb/summary.json"))
for _, k in ipairs{"general_before", "general_after", "domain_before", "domain_after"} do
  check(type(a[k]) == "number" and a[k] == sb[k], ("%s: %s trusted, %s sandboxed"):format(k, tostring(a[k]), tostring(sb[k])))
end
local run_json = adept.json.decode(read(root .. "/sb/run.json"))
check(run_json.recipe and run_json.recipe.sha256 == adept.sha256(read(recipe)), "the sandboxed run.json hashes the recipe")
local mods = {}
for _, m in ipairs(run_json.modules or {}) do mods[m.name] = m end
check(mods.my_schedule, "the sandboxed run.json names the local module: " .. adept.json.encode(run_json.modules or {}))
check(adept.fs.exists(root .. "/sb/.adept/sha256.json"), "the sandboxed hash cache lives in the output folder")

-- 2. sandboxed, an input the command line does not name (here adept.cpt's default model) is refused before any work
local no_model = common:gsub("^model=%S+ ", "")
out, ok = run(("%s -q --sandbox %s %s out=%s"):format(exe, q(recipe), no_model, q(root .. "/nomodel")))
check(not ok and out:find("sandbox: reading '[^']*stories260K[^']*'.- by [%w%._:]+ is not allowed in a sandboxed recipe")
  and out:find("(run with --trust to allow)", 1, true), "an undeclared default input must be refused", out)
check(not adept.fs.exists(root .. "/nomodel/importance.json"), "refused before any work")

-- 3. pack the trusted run with its results; inspect shows the recipe, the module and the hashed inputs
local bundle = root .. "/exp.adept"
out, ok = run(("%s --threads 2 pack %s %s out=%s -o %s --results %s"):format(exe, q(recipe), common,
  q(root .. "/a"), q(bundle), q(root .. "/a")))
check(ok and out:find("1 module", 1, true), "pack failed", out)
out, ok = run(("%s inspect %s"):format(exe, q(bundle)))
local sha = adept.fs.sha256(model .. "/stories260K.bin")
check(ok and out:find("module   my_schedule", 1, true) and out:find("stories260K.bin  sha256 " .. sha, 1, true)
  and out:find("threads 2", 1, true), "inspect", out)

-- 4. verify re-runs it sandboxed and finds every compared metric bitwise equal
out, ok = run(("%s verify %s --out %s"):format(exe, q(bundle), q(root .. "/v/a")))
check(ok, "verify failed", out)
check(out:find("summary.json: domain_after%s+bitwise") and out:find("summary.json: general_after%s+bitwise"),
  "verify must compare the summary bitwise", out)
check(out:find("verdict: %d+ bitwise, 0 within tolerance, 0 differ"), "verify verdict", out)

os.execute("rm -rf " .. q(root))
print("cpt bundle: sandboxed adept.cpt, pack, inspect and verify checked")
