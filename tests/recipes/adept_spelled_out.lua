-- Recipe test: recipes/adept.lua (the method spelled out from primitives) gives bitwise the results of
-- adept.cpt's "adept" method with the same options: held-out losses, token shift, chosen layers and every weight
-- of the trained model. Also checks adept.cpt's extension points (metric, placement, lr_policy, schedule as Lua
-- functions) are called and recorded. 77 without ../shared.
local adept = require "adept"
local cpt = require "adept.cpt"
local shared = os.getenv("ADEPT_SHARED") or "../shared"
local model = shared .. "/models/stories260K"
if not adept.fs.exists(model .. "/stories260K.bin") or not adept.fs.exists(shared .. "/corpora/medquad.txt.gz") then
  print("skip: " .. model .. " or the corpora not found (set ADEPT_SHARED)")
  os.exit(77)
end
local root = assert(arg[0]:match("^(.*)/tests/recipes/[^/]*$") or (arg[0]:match("^tests/recipes/") and "."),
  "cannot locate the repository from " .. arg[0])
local tmp = os.tmpname()
os.remove(tmp)
local args = {model = model, general = shared .. "/corpora/tinystories_val.txt",
  domain = shared .. "/corpora/medquad.txt.gz", k = 2, steps = 6, refresh = 2, seq_len = 32, batch_size = 2,
  probe_batches = 2, eval_batches = 2, shift_batches = 1, max_documents = 200, seed = 1, report = false,
  progress = false}
local function set_args(out)
  for k in pairs(adept.args) do adept.args[k] = nil end
  for k, v in pairs(args) do adept.args[k] = v end
  adept.args.out = out
end

-- the spelled-out recipe, then adept.cpt with the same options
set_args(tmp .. "-spelled")
dofile(root .. "/recipes/adept.lua")
set_args(tmp .. "-cpt")
local s_cpt = cpt.run(cpt.options("adept"))
local s_rec = adept.json.read(tmp .. "-spelled/summary.json")
for _, f in ipairs{"general_before", "general_after", "domain_before", "domain_after", "token_shift_general",
                   "token_shift_domain", "kl_general", "trainable_params", "total_params", "tokens", "lr_refreshes"} do
  assert(s_rec[f] == s_cpt[f], ("%s differs: spelled out %s, adept.cpt %s"):format(f, tostring(s_rec[f]), tostring(s_cpt[f])))
end
assert(table.concat(s_rec.expanded_from, ",") == table.concat(s_cpt.expanded_from, ","), "chosen layers differ")
local a, b = adept.load(tmp .. "-spelled/model"), adept.load(tmp .. "-cpt/model")
for _, name in ipairs(a:param_names()) do
  local d = a:param(name):sub(b:param(name)):abs():max()
  assert(d == 0, ("weight %s differs by %g"):format(name, d))
end
print(("spelled out == adept.cpt: general %.6f, domain %.6f, copies of %s"):format(s_rec.general_after,
  s_rec.domain_after, table.concat(s_rec.expanded_from, ",")))

-- extension points: each a Lua function, each called, each recorded
local called = {}
local spec = {
  metric = function(m, batches) called.metric = #batches; local s = {} for l = 0, m:num_layers() - 1 do s[l] = -l end return s end,
  placement = function(scores, n, o) called.placement = n; return {scores[0] == 0 and 1 or 0, 3} end,
  lr_policy = function(units, o) called.lr_policy = (called.lr_policy or 0) + 1
    local scales = {} for name in pairs(units) do scales[name] = 0.5 end return scales end,
  schedule = function(step, total) called.schedule = total; return 1 end,
  out = tmp .. "-ext",
}
set_args(nil)
adept.args.out = nil
local s = cpt.run(cpt.options("adept", spec))
assert(called.metric == 2 and called.placement == 5 and called.lr_policy == 2 and called.schedule == 6,
  "extension points not all called: " .. adept.json.encode(called))
assert(table.concat(s.expanded_from, ",") == "1,3", "placement function ignored: " .. table.concat(s.expanded_from, ","))
assert(s.metric == "<function>" and s.lr_policy == "<function>" and s.schedule == "<function>", "not recorded")
local imp = adept.json.read(tmp .. "-ext/importance.json")
assert(imp.scores["4"] == -4, "importance.json does not hold the custom metric's scores")
-- a list placement from the command line, and a schedule by name
local o = cpt.options("adept", {}, {placement = "2,4", schedule = "linear", out = tmp .. "-list"})
assert(type(o.placement) == "table" and o.placement[1] == 2 and o.placement[2] == 4, "placement=2,4")
assert(tostring(cpt.make_schedule(o)):match("^linear"), "schedule=linear")
for _, d in ipairs{"-spelled", "-cpt", "-ext"} do adept.fs.remove_tree(tmp .. d) end
print("extension points: metric, placement, lr_policy and schedule functions called and recorded")
