-- Recipe test: a bundle packed on another machine verifies here (issue 14's "packed on one machine, verifies on a
-- fresh clone on another"). tests/bundles/stories260k_adept.adept was packed by tests/bundles/pack.sh on the
-- developer machine that committed it: an ADEPT run on stories260K with its results and its inputs' hashes, not
-- its inputs. Every test run (CI's fresh clone on its own machine included) finds the inputs by hash under
-- ../shared, re-runs the recipe sandboxed on 2 threads with OpenBLAS's Haswell kernels, as it was packed, and
-- compares every metric.
-- Verdicts: nothing may differ beyond the tolerance on any machine. Where this build targets the same vector
-- instruction sets as the packing build (run.json's machine.isa: the -march=native code of the engine's own loops)
-- every metric must be bitwise (DESIGN.md §2.7: same thread count, same kernels, same code). With other
-- instruction sets the compiler may contract other multiply-adds, so bitwise is reported, not required.
-- 77 without ../shared or without AVX2 (the Haswell kernels need it).
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local function read(path) local f = assert(io.open(path, "rb"), "missing " .. path); local s = f:read("a"); f:close(); return s end
if not read("/proc/cpuinfo"):find("%savx2%s") then
  print("skip: the bundle was packed with OpenBLAS's Haswell kernels, which need AVX2; this CPU has none")
  os.exit(77)
end
local exe = assert(os.getenv("ADEPTLUA"), "ADEPTLUA is not set: run through ctest")
local here = assert(arg[0]:match("^(.*)/[^/]*$"), "run as a file: " .. tostring(arg[0]))
local bundle = here .. "/../bundles/stories260k_adept.adept"
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function check(cond, msg, out) if not cond then error(msg .. (out and ("\n--- output:\n" .. out) or ""), 2) end end

local root = os.tmpname()
os.remove(root)
root = root .. "-other-machine"
adept.fs.mkdir_p(root)
local p = assert(io.popen(("cd %s && ADEPT_HASH_CACHE=%s OPENBLAS_CORETYPE=Haswell %s --threads 2 verify %s --data %s "
  .. "--data %s --out %s 2>&1"):format(q(root), q(root .. "/sha256.json"), q(exe), q(bundle), q(model),
  q(shared .. "/corpora"), q(root .. "/run"))))
local out = p:read("a")
local ok = p:close()
local bitwise, within, differ = out:match("verdict: (%d+) bitwise, (%d+) within tolerance, (%d+) differ")
check(ok == true and bitwise, "verify failed", out)
bitwise, within, differ = tonumber(bitwise), tonumber(within), tonumber(differ)
check(differ == 0 and bitwise + within >= 20, "verify must compare the run's metrics and none may differ", out)
check(out:find("metrics.jsonl: train:loss%s+bitwise") or out:find("metrics.jsonl: train:loss%s+within tolerance"),
  "verify must compare the per-step training losses", out)

-- the packing machine, from the run.json the bundle carries
local packed = adept.json.decode(assert(adept._bundle.member(bundle, "results/run.json")))
local then_ = packed.machine or {}
local now = adept.build_info()
print(("packed on: %s, built for %s (threads %s, OpenBLAS %s, engine %s)"):format(tostring(then_.cpu),
  tostring(then_.isa), tostring(then_.threads), tostring(then_.openblas_coretype),
  tostring(packed.engine and packed.engine.commit)))
print(("verified on: %s, built for %s (threads 2, OpenBLAS Haswell, engine %s)"):format(now.cpu, now.isa, now.commit))
print(("verdict: %d bitwise, %d within tolerance, %d differ"):format(bitwise, within, differ))
check(then_.isa, "the bundle's run.json must name the instruction sets it was built for (rerun tests/bundles/pack.sh)")
if then_.isa == now.isa then
  check(within == 0, "built for the packing build's instruction sets, every metric must be bitwise", out)
end
os.execute("rm -rf " .. q(root))
