-- Recipe test: adept.cpt runs a researcher can trust (issue 14) on stories260K, each check in its own adeptlua
-- process: declared options (typos and bad values fail before any work, --help), --seed N, run identity
-- (skip only the same run; another run in out= is an error naming what differs; force=true replaces it),
-- run.json provenance, model-path / tokenizer-mismatch / non-finite-weight errors before any corpus is read,
-- and summary.json after a resumed run. 77 without ../shared.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz")
    or not adept.fs.exists(shared .. "/tokenizers/gpt2/tokenizer.json") then
  print("skip: " .. model .. ", the corpora or the gpt2 tokenizer not found (set ADEPT_SHARED)")
  os.exit(77)
end
local exe = assert(os.getenv("ADEPTLUA"), "ADEPTLUA is not set: run through ctest")
local root = os.tmpname()
os.remove(root)
root = root .. "-cpt-trust"
adept.fs.mkdir_p(root)
-- a private hash cache, so the test neither reads nor writes the user's
local env = "ADEPT_HASH_CACHE=" .. root .. "/sha256.json "

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

local recipe = root .. "/adept_run.lua"
write(recipe, 'local cpt = require "adept.cpt"\ncpt.main("adept")\n')
local common = ("model=%s general=%s domain=%s k=2 steps=4 refresh=2 seq_len=16 batch_size=2 probe_batches=1 "
  .. "eval_batches=1 shift_batches=1 max_documents=60 progress=false report=false"):format(q(model),
  q(shared .. "/corpora/tinystories_val.txt"), q(shared .. "/corpora/medquad.txt.gz"))
local function cpt(extra, flags) return run(("%s %s -q %s %s %s"):format(exe, flags or "", q(recipe), common, extra)) end

-- 1. options: a typo, a bad value and a bad choice fail at once, naming the option; --help lists them
local out, ok, code = cpt("setps=10 out=" .. q(root .. "/typo"))
check(not ok and code == 1, "a misspelt option must fail", out)
check(out:find("unknown option 'setps' — did you mean 'steps'?", 1, true), "typo message", out)
check(not adept.fs.exists(root .. "/typo"), "a typo must fail before any work")
out, ok = cpt("lr=abc out=" .. q(root .. "/bad"))
check(not ok and out:find("option 'lr' (command line) must be number, got 'abc'", 1, true), "lr=abc message", out)
check(not adept.fs.exists(root .. "/bad/importance.json"), "lr=abc must fail before importance")
out, ok = cpt("lr_policy=decoupld out=" .. q(root .. "/bad"))
check(not ok and out:find("did you mean 'decoupled'", 1, true), "bad choice message", out)
out, ok = run(("%s %s --help"):format(exe, q(recipe)))
check(ok and out:find("steps=INTEGER", 1, true) and out:find("lr_policy=", 1, true), "--help lists the options", out)

-- 2. --seed N reaches adept.cpt (seed= is the same option)
local a_out = root .. "/a"
out, ok = cpt("out=" .. q(a_out), "--seed 3")
check(ok, "the first run failed", out)
local s = adept.json.decode(read(a_out .. "/summary.json"))
check(s.seed == 3, "--seed 3 gave seed " .. tostring(s.seed))
for _, f in ipairs{"warmup", "min_ratio", "weight_decay", "clip", "probe_batches", "max_scale", "schedule"} do
  check(s[f] ~= nil, "summary.json lacks " .. f)
end
check(s.schedule:match("^cosine"), "schedule " .. tostring(s.schedule))

-- 3. run.json: options, command line, the recipe copied and hashed, hashed inputs, engine, machine, times
local r = adept.json.decode(read(a_out .. "/run.json"))
check(r.status == "finished" and r.options.lr == 1e-3 and r.options.seed == 3, "run.json status/options")
check(read(a_out .. "/recipe.lua") == read(recipe), "the recipe copy differs")
check(r.recipe.sha256 == adept.sha256(read(recipe)), "recipe hash")
local cmd = table.concat(r.command_line, " ")
check(cmd:find("--seed 3", 1, true) and cmd:find("steps=4", 1, true), "command line: " .. cmd)
local hashed = {}
for _, i in ipairs(r.inputs) do hashed[i.path:match("[^/]+$")] = i end
check(hashed["stories260K.bin"] and hashed["tok512.bin"] and hashed["medquad.txt.gz"] and hashed["tinystories_val.txt"],
  "inputs: " .. adept.json.encode(r.inputs))
local sha, size = adept.fs.sha256(model .. "/stories260K.bin")
check(hashed["stories260K.bin"].sha256 == sha and hashed["stories260K.bin"].size == size, "model hash")
check(r.engine.version == adept.version() and type(r.engine.commit) == "string", "engine")
check(type(r.machine.cpu) == "string" and type(r.machine.blas_core) == "string" and r.machine.threads >= 1, "machine")
check(r.started and r.finished and r.result.domain_after == s.domain_after, "times/result")
check(r.seed == 3, "seed in run.json")

-- 4. identity: the same command is skipped; other options in the same out= are an error naming the difference
out, ok = cpt("out=" .. q(a_out), "--seed 3")
check(ok, "rerun failed", out)
local s2 = adept.json.decode(read(a_out .. "/summary.json"))
check(s2.wall_time == s.wall_time, "the identical rerun was not skipped")
out, ok = cpt("lr=0.004 out=" .. q(a_out), "--seed 3")
check(not ok and out:find("holds a different run (lr: 0.004 here, 0.001 there)", 1, true)
  and out:find("force=true", 1, true), "different options must be an error", out)
write(recipe, 'local cpt = require "adept.cpt"\ncpt.main("adept")\n-- edited\n')
out, ok = cpt("out=" .. q(a_out), "--seed 3")
check(not ok and out:find("the recipe's source changed", 1, true), "a changed recipe must be an error", out)
out, ok = cpt("lr=0.004 force=true out=" .. q(a_out), "--seed 3")
check(ok, "force=true failed", out)
check(adept.json.decode(read(a_out .. "/summary.json")).lr == 0.004, "force=true did not replace the run")

-- 5. bad inputs fail as what they are, before any corpus is read
out, ok = cpt("model=" .. q(root .. "/nope") .. " out=" .. q(root .. "/m"))
check(not ok and out:find("adept.cpt: model: " .. root .. "/nope does not exist", 1, true), "missing model", out)
local mix = root .. "/mixed"
adept.fs.mkdir_p(mix)
local abs_model = assert(io.popen("realpath " .. q(model .. "/stories260K.bin"))):read("l")
os.execute(("ln -s %s %s && cp %s %s"):format(q(abs_model), q(mix .. "/stories260K.bin"),
  q(shared .. "/tokenizers/gpt2/tokenizer.json"), q(mix .. "/tokenizer.json")))
out, ok = cpt("model=" .. q(mix) .. " out=" .. q(root .. "/mix"))
check(not ok and out:find("tokenizer and model do not match", 1, true), "tokenizer mismatch", out)
check(not adept.fs.exists(root .. "/mix/importance.json"), "mismatch must fail before any work")
local m = adept.load(model .. "/stories260K.bin")
local w = m:param("model.layers.1.mlp.up_proj.weight")
w:set(0 / 0, 1, 2)
m:save(root .. "/nan_model")
out, ok = cpt("model=" .. q(root .. "/nan_model") .. " out=" .. q(root .. "/nan"))
check(not ok and out:find("model.layers.1.mlp.up_proj.weight holds 1 non-finite value", 1, true), "NaN weights", out)
local ok_load = pcall(adept.load, root .. "/nan_model", {allow_nonfinite = true})
check(ok_load, "allow_nonfinite=true must load it")

-- 6. a resumed run: the first process dies after step 3 (checkpoint at step 2); the summary spans both
local killer = root .. "/killer.lua"
write(killer, ([[
local real = adept.train
adept.train = function(cfg)
  if os.getenv("KILL") then cfg.every[3] = function() os.exit(9) end end
  return real(cfg)
end
dofile("%s")
]]):format(recipe))
local r_out = root .. "/resume"
local resume_cmd = ("%s -q %s %s steps=6 checkpoint_every=2 out=%s"):format(exe, q(killer), common, q(r_out))
out, ok, code = run("KILL=1 " .. resume_cmd)
check(code == 9 and adept.fs.exists(r_out .. "/checkpoints/step_00000002"), "the first process should die at step 3", out)
out, ok = run(resume_cmd)
check(ok, "the resumed process failed", out)
local rs = adept.json.decode(read(r_out .. "/summary.json"))
check(rs.steps == 6 and rs.lr_refreshes == 2, ("steps %s, lr_refreshes %s (refreshes at 2 and 4)"):format(rs.steps, rs.lr_refreshes))
local last_elapsed
for line in read(r_out .. "/metrics.jsonl"):gmatch("[^\n]+") do
  local rec = adept.json.decode(line)
  if rec.type == "train" then last_elapsed = rec.elapsed end
end
-- train_seconds is the trainer's elapsed over both processes; the last train record was logged a moment before
check(rs.train_seconds >= last_elapsed and rs.train_seconds < last_elapsed + 5, "train_seconds " .. rs.train_seconds)
check(math.abs(rs.step_seconds - rs.train_seconds / 6) < 1e-12, "step_seconds divides by the steps of both processes")
check(rs.wall_time >= rs.train_seconds, "wall_time must cover both processes' training")
local rr = adept.json.decode(read(r_out .. "/run.json"))
check(rr.processes == 2 and rr.first_started, "run.json counts the processes")

os.execute("rm -rf " .. q(root))
print("cpt trust: options, --seed, identity, run.json, input errors and resume checked")
