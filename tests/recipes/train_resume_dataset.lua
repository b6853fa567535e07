-- Exact resume on a real corpus: stories260K trained on TinyStories through an adept.dataset view (its
-- cursor saved in the checkpoint): 4 steps straight == 2 steps + SIGTERM + resume + 2 steps, bitwise.
local adept = require "adept"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K/stories260K.bin"
local corpus = shared .. "/corpora/tinystories_val.txt"
if not adept.fs.exists(model) or not adept.fs.exists(corpus) then
  print("skipped: " .. model .. " or " .. corpus .. " is absent")
  os.exit(77)
end
local exe = assert(os.getenv("ADEPTLUA"), "ADEPTLUA is not set")

local child = os.tmpname() .. ".lua"
local f = assert(io.open(child, "w"))
f:write(([[
local adept = require "adept"
local a = adept.args
local m = adept.load(%q)
local tok = adept.tokenizer(%q)
local ds = adept.dataset{path = %q, tokenizer = tok, seq_len = 32, holdout = 0.05, seed = 3, cache = false,
                         progress = false}
m:freeze("^model%%.embed_tokens%%.")
local opt = adept.adamw(m, {lr = 2e-3})
local every = {}
-- the signal goes to the process, so any of its threads (an OpenMP worker) may run the handler, later than kill
-- returns on a busy machine: wait for the flag, so the run stops at this step and not the next
if a.kill_at then every[a.kill_at] = function()
  os.execute("kill -TERM " .. adept.getpid())
  for _ = 1, 500 do if adept.interrupted() then break end adept.sleep(0.01) end
end end
adept.train{model = m, optimizer = opt, data = ds:train(), steps = 4, batch_size = 2, grad_accum = 2,
  schedule = adept.schedule.cosine{warmup = 1}, every = every, progress = false,
  eval = {val = ds:holdout()}, eval_every = 2, eval_batches = 2,
  checkpoint = {dir = a.out .. "/ckpt", every = 2}, resume = true, log = a.out .. "/metrics.jsonl"}
adept.save_weights(m, a.out .. "/final.safetensors")
]]):format(model, model:gsub("stories260K%.bin$", "tok512.bin"), corpus))
f:close()

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  adept.fs.mkdir_p(d)
  return d
end
local function run(args)
  local p = io.popen(exe .. " " .. child .. " " .. args .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end
local function losses(d)
  local out, evals = {}, {}
  for line in io.lines(d .. "/metrics.jsonl") do
    local o = adept.json.decode(line)
    if o.type == "train" then out[#out + 1] = o.loss end
    if o.type == "eval" then evals[o.step] = o.loss.val end
  end
  return out, evals
end
local function slurp(p)
  local h = assert(io.open(p, "rb"))
  local s = h:read("a")
  h:close()
  return s
end

local a, b = tmpdir(), tmpdir()
local out, ok = run("out=" .. a)
assert(ok, out)
out, ok, code = run("out=" .. b .. " kill_at=2")
assert(not ok and code == 143, "the interrupted run should exit 143: " .. out)
assert(out:find("interrupted by SIGTERM at step 2", 1, true), out)
out, ok = run("out=" .. b)
assert(ok, out)
local la, ea = losses(a)
local lb, eb = losses(b)
assert(#la == 4 and #lb == 4, ("%d and %d logged steps"):format(#la, #lb))
for i = 1, 4 do assert(la[i] == lb[i], ("step %d: %.17g vs %.17g"):format(i, la[i], lb[i])) end
-- held-out evaluation (before training, at 2 and 4) reads fixed batches and never moves the train cursor
for _, s in ipairs{0, 2, 4} do
  assert(type(ea[s]) == "number" and ea[s] == eb[s], ("eval at step %d: %s vs %s"):format(s, ea[s], eb[s]))
end
assert(slurp(a .. "/final.safetensors") == slurp(b .. "/final.safetensors"), "final weights differ")
adept.fs.remove_tree(a)
adept.fs.remove_tree(b)
os.remove(child)
print("exact resume on a dataset view: 4 losses bitwise equal, final weights equal")
