-- adept.train and its primitives: gradient accumulation, exact resume after SIGTERM, SIGKILL during a
-- checkpoint write, callbacks, non-finite handling, memory accounting, adept.fs and JSON.
local adept = require "adept"
local helpers = require "spec_helpers"

local CFG = {vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
             num_attention_heads = 2, num_key_value_heads = 1}

-- Deterministic micro-batch i: {inputs, targets} 2 x 8, with a varying number of ignored targets so that
-- micro-batches hold different token counts (where a mean of means would be wrong).
local function micro(i, rows)
  rows = rows or 2
  local inputs, targets = {}, {}
  for r = 1, rows do
    local a, b = {}, {}
    for t = 1, 8 do
      a[t] = (i * 11 + r * 5 + t * t * 3) % CFG.vocab_size
      b[t] = (i * 7 + r * 13 + t * 2 + 1) % CFG.vocab_size
      if r == 1 and t <= (i % 4) * 2 then b[t] = -1 end
    end
    inputs[r], targets[r] = a, b
  end
  return {inputs = inputs, targets = targets}
end

local function concat(bs)
  local out = {inputs = {}, targets = {}}
  for _, b in ipairs(bs) do
    for r = 1, #b.inputs do
      out.inputs[#out.inputs + 1] = b.inputs[r]
      out.targets[#out.targets + 1] = b.targets[r]
    end
  end
  return out
end

-- Reads an f32 safetensors file written by adept.save_weights: name -> array of numbers.
local function read_weights(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  local n = string.unpack("<I8", data)
  local header = adept.json.decode(data:sub(9, 8 + n))
  local out = {}
  for name, info in pairs(header) do
    if name ~= "__metadata__" then
      local a, b = info.data_offsets[1], info.data_offsets[2]
      local vals = {}
      for off = a, b - 4, 4 do vals[#vals + 1] = string.unpack("<f", data, 9 + n + off) end
      out[name] = vals
    end
  end
  return out
end

local function train_losses(log)
  local out = {}
  for line in io.lines(log) do
    local o = adept.json.decode(line)
    if o.type == "train" then out[#out + 1] = o.loss end
  end
  return out
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  adept.fs.mkdir_p(d)
  return d
end

describe("adept.train", function()
  it("accumulates k micro-batches exactly like one batch k times the size", function()
    local k, steps = 3, 4
    local ma = adept.model(CFG, {seed = 5})
    local mb = adept.model(CFG, {seed = 5})
    -- eps = 1e-3, not the default 1e-8: Adam's step g / (|g| + eps) has slope eps / (|g| + eps)^2, up to
    -- 1 / eps at g = 0, so with eps = 1e-8 a gradient element that cancels to ~0 turns a 1e-12 difference of
    -- summation order into a 1e-4 difference of its update; the comparison would be ill-conditioned whatever
    -- the tolerance (below 2 lr per step). With 1e-3 the slope is at most 1e3 and the bound below follows.
    local lr, eps = 1e-2, 1e-3
    local oa = adept.adamw(ma, {lr = lr, eps = eps})
    local ob = adept.adamw(mb, {lr = lr, eps = eps})
    local d = tmpdir()
    local ra = adept.train{model = ma, optimizer = oa, data = function(i) return micro(i) end, steps = steps,
                           grad_accum = k, progress = false, log = d .. "/a.jsonl"}
    local rb = adept.train{model = mb, optimizer = ob, steps = steps, progress = false, log = d .. "/b.jsonl",
                           data = function(s) return concat{micro(k * s), micro(k * s + 1), micro(k * s + 2)} end}
    assert.equals(ra.tokens_seen, rb.tokens_seen)
    local la, lb = train_losses(d .. "/a.jsonl"), train_losses(d .. "/b.jsonl")
    assert.equals(steps, #la)
    -- Bound on the weights. Every gradient element is a sum over the n = 48 tokens of the k micro-batches of
    -- per-token terms c_t (each already divided by the batch's target count); the two runs add them in another
    -- order (three GEMMs over 16 rows accumulated vs one over 48, blocked as the BLAS kernel likes), so they
    -- differ by at most 2 (n - 1) u sum|c_t| with u = 2^-24 (Higham's bound, once per ordering). Each per-token
    -- gradient element is below 1 here (|dloss/dlogit| <= 1, RMS-normalised inputs, weights of std 0.02), so
    -- sum|c_t| <= 1 and |dg| <= 2 * 47 * 2^-24 = 5.6e-6. The update's slope in g is at most 1 / eps (above), so
    -- per step |dw| <= lr * |dg| / eps, plus one rounding of the stored weight (ulp(2) = 2^-22: RMSNorm gains
    -- stay near 1). Over S steps: S * (lr * 5.6e-6 / eps + 2^-22) = 2.3e-4. A wrong accumulation (a dropped or
    -- repeated micro-batch) moves weights by about lr = 1e-2 in the first step: two orders above the bound.
    local dg = 2 * (3 * 16 - 1) * 2 ^ -24
    local tol_w = steps * (lr * dg / eps + 2 ^ -22)
    adept.save_weights(ma, d .. "/a.safetensors")
    adept.save_weights(mb, d .. "/b.safetensors")
    local wa, wb = read_weights(d .. "/a.safetensors"), read_weights(d .. "/b.safetensors")
    local worst, g1 = helpers.max_abs_diff(wa, wb), 0
    print(("accumulation: largest weight difference %.3g (bound %.3g)"):format(worst, tol_w))
    assert.is_true(worst <= tol_w, "weights differ by " .. worst)
    -- Bound on the losses. Step 1 sees equal weights, so only the forward's rounding differs: a logit is a
    -- dot product of an RMS-normalised row h (|h|_1 <= sqrt(16) |h|_2 = 16) with head weights below 0.14
    -- (std 0.02 init, 5 sigma, plus <= lr * steps of movement), so sum|h_i w_i| <= 2.2; its inputs went
    -- through about 10 GEMMs of inner size <= 48 (projections, attention over 8 positions, MLP, and the
    -- 48-token reductions), each within 2 K u of its terms: |dz| <= (10 * 2 * 48) u * 2.2 = 1.3e-4, and
    -- log-softmax at most doubles it. The mean NLL (about log 29 = 3.4) thus agrees to 2.6e-4 / 3.4 = 8e-5.
    -- Later steps also see weights apart by <= tol_w, which moves the loss by at most sum|g| * tol_w to first
    -- order (sum|g| from the last step's gradient, doubled for the change of gradient along the way).
    local tol_l1 = 2 * (10 * 2 * 48) * 2 ^ -24 * 2.2
    for _, name in ipairs(mb:param_names()) do
      local g = mb:grad(name)
      if g then g1 = g1 + g:abs():sum() end
    end
    for s = 1, steps do
      local tol = tol_l1 + (s > 1 and 2 * g1 * tol_w or 0)
      assert.is_true(math.abs(la[s] - lb[s]) <= tol, ("step %d: losses %.9g and %.9g"):format(s, la[s], lb[s]))
    end
    -- the test means something: the micro-batches hold different token counts, so a mean of means differs,
    -- by more than the loss bound above
    local m = adept.model(CFG, {seed = 5})
    local counts, means, nll_total, n_total = {}, 0, 0, 0
    for i = 0, k - 1 do
      local nll, n = adept.nll(m, micro(i))
      counts[#counts + 1] = n
      means = means + nll / n / k
      nll_total, n_total = nll_total + nll, n_total + n
    end
    assert.are_not.equal(counts[1], counts[2])
    print(("accumulation: a mean of means is off by %.3g (loss bound %.3g)"):format(means - nll_total / n_total, tol_l1))
    assert.is_true(math.abs(means - nll_total / n_total) > tol_l1)
  end)

  it("runs callbacks with a ctx, lets them change LR scales, freeze and stop", function()
    local m = adept.model(CFG, {seed = 2})
    local opt = adept.adamw(m, {lr = 1e-2})
    local seen = {}
    local d = tmpdir()
    local res = adept.train{model = m, optimizer = opt, data = function(i) return micro(i) end, steps = 20,
      progress = false, schedule = adept.schedule.cosine{warmup = 2}, log = d .. "/m.jsonl",
      eval = {held = {micro(100)}},
      every = {
        [2] = function(ctx)
          seen[#seen + 1] = ctx.step
          assert.is_number(ctx.loss)
          assert.is_number(ctx.lr)
          assert.is_true(ctx.tokens_seen > 0 and ctx.elapsed >= 0)
          assert.equals(m, ctx.model)
          assert.equals(opt, ctx.optimizer)
        end,
        [3] = function(ctx)
          ctx.optimizer:set_lr_scales({["model.norm.weight"] = 0.5})
          ctx.model:freeze("^model%.layers%.0%.")
        end,
        [5] = function(ctx) if ctx.step == 5 then return "stop" end end,
      }}
    assert.same({2, 4}, seen)
    assert.equals(5, res.steps)
    assert.is_true(res.stopped)
    assert.equals(0.5, opt:lr_scales()["model.norm.weight"])
    assert.is_nil(m:grad("model.layers.0.mlp.up_proj.weight"))
    assert.is_nil(opt:state().slots["model.layers.0.mlp.up_proj.weight"]) -- frozen: state freed
    assert.is_not_nil(opt:state().slots["model.layers.1.mlp.up_proj.weight"])
    -- the log: an eval before the first update and at the end, the LR scales when a callback changed them
    local kinds = {}
    for line in io.lines(d .. "/m.jsonl") do
      local o = adept.json.decode(line)
      kinds[#kinds + 1] = o.type .. "@" .. o.step
      if o.type == "lr_scales" then assert.same({["model.norm.weight"] = 0.5}, o.scales) end
    end
    assert.same({"eval@0", "train@1", "train@2", "train@3", "lr_scales@3", "train@4", "train@5", "eval@5"}, kinds)
  end)

  it("names a step without any target token instead of reporting a NaN loss", function()
    local m = adept.model(CFG, {seed = 1})
    local none = {inputs = {{1, 2, 3}}, targets = {{-1, -1, -1}}}
    local ok, err = pcall(adept.train, {model = m, optimizer = adept.adamw(m), data = {none}, steps = 1,
                                        progress = false})
    assert.is_false(ok)
    assert.matches("step 1: .*no target tokens", err)
  end)

  it("refuses an optimizer built for another model", function()
    local m, other = adept.model(CFG, {seed = 1}), adept.model(CFG, {seed = 2})
    local ok, err = pcall(adept.train, {model = m, optimizer = adept.adamw(other), data = {micro(0)}, steps = 1,
                                        progress = false})
    assert.is_false(ok)
    assert.matches("built for another model", err, 1, true)
    -- the binding names itself once: not "adept.train_step: train_step: ..."
    local ok2, err2 = pcall(adept.train_step, m, adept.adamw(other), {micro(0)})
    assert.is_false(ok2)
    assert.matches("^adept%.train_step: the optimizer was built for another model", err2)
  end)

  it("stops on a non-finite loss by default and skips when skip_nonfinite=true", function()
    -- the engine's step reports a non-finite loss (it zeroes the gradients and updates nothing); the loop
    -- decides: stop by default, skip with skip_nonfinite. Steps 3 and 5 report one here.
    local orig = adept.train_step
    local calls = 0
    adept.train_step = function(m, o, mbs, opts)
      calls = calls + 1
      if calls == 3 or calls == 5 then
        m:zero_grad()
        return {loss = 0 / 0, tokens = 1, grad_norm = 0, nonfinite = true, reason = "loss is nan"}
      end
      return orig(m, o, mbs, opts)
    end
    local ok, err = pcall(adept.train, {model = adept.model(CFG), optimizer = nil, data = {micro(0)}, steps = 1})
    assert.is_false(ok)
    assert.matches("optimizer is required", err, 1, true)
    local m = adept.model(CFG, {seed = 1})
    ok, err = pcall(adept.train, {model = m, optimizer = adept.adamw(m), data = function(i) return micro(i) end,
                                  steps = 6, progress = false})
    assert.is_false(ok)
    assert.matches("step 3: loss is nan", err:gsub("-nan", "nan"), 1, true)
    calls = 0
    local d = tmpdir()
    local res = adept.train{model = m, optimizer = adept.adamw(m), data = function(i) return micro(i) end,
                            steps = 6, progress = false, skip_nonfinite = true, log = d .. "/m.jsonl"}
    adept.train_step = orig
    assert.equals(2, res.skipped)
    assert.equals(6, res.steps)
    local skips = 0
    for line in io.lines(d .. "/m.jsonl") do if adept.json.decode(line).type == "skip" then skips = skips + 1 end end
    assert.equals(2, skips)
    assert.equals(4, #train_losses(d .. "/m.jsonl"))
  end)

  it("reports memory: gradients and optimizer state scale with the trainable share", function()
    local cfg = {vocab_size = 64, hidden_size = 32, intermediate_size = 64, num_hidden_layers = 8,
                 num_attention_heads = 4}
    local full = adept.model(cfg, {seed = 1})
    local top = adept.model(cfg, {seed = 1})
    top:freeze("all")
    top:unfreeze("^model%.layers%.[67]%.")
    local of, ot = adept.adamw(full), adept.adamw(top)
    for _, pair in ipairs{{full, of}, {top, ot}} do
      pair[1]:zero_grad()
      adept.forward_backward(pair[1], micro(1))
      pair[2]:step()
    end
    local mf, mt = adept.memory(full, of), adept.memory(top, ot)
    assert.equals(mf.params, mt.params)
    assert.equals(mf.total_params * 4, mf.params)
    assert.equals(mf.params, mf.grads)
    -- two of eight layers, no embeddings or head: exactly the trainable elements
    local layer = (32 * 32 * 4 + 3 * 32 * 64 + 2 * 32) -- q,k,v,o + gate,up,down + two norms
    assert.equals(2 * layer, mt.trainable_params)
    assert.equals(2 * layer * 4, mt.grads)
    assert.equals(2 * mt.grads, mt.optimizer)
    assert.equals(mt.optimizer, mt.optimizer_allocated)
    assert.equals(2 * mf.grads, mf.optimizer_allocated)
    local share = mt.trainable_params / mt.total_params
    assert.near(share, mt.grads / mf.grads, 1e-12)
    assert.near(share, mt.optimizer_allocated / mf.optimizer_allocated, 1e-12)
    assert.is_true(mt.activations > 0)
  end)

  it("provides adept.fs", function()
    local d = tmpdir()
    adept.fs.mkdir_p(d .. "/x/y/z")
    assert.equals("directory", adept.fs.exists(d .. "/x/y/z"))
    local f = io.open(d .. "/x/y/z/file", "w"); f:write("hi"); f:close()
    adept.fs.fsync_tree(d .. "/x")
    adept.fs.rename(d .. "/x", d .. "/w")
    assert.same({"w"}, adept.fs.list(d))
    adept.fs.remove_tree(d .. "/w")
    assert.same({}, adept.fs.list(d))
    assert.is_false(adept.fs.exists(d .. "/w"))
    local ok, msg = pcall(adept.fs.list, d .. "/absent")
    assert.is_false(ok)
    assert.matches("adept.fs.list: ", msg, 1, true)
    assert.matches("absent", msg, 1, true)
  end)
end)

-- The resume tests run recipes in child processes: SIGTERM and SIGKILL are real.
describe("adept.train checkpoints", function()
  local exe = helpers.adeptlua()
  local recipe = helpers.tmpfile([[
local adept = require "adept"
local a = adept.args
local m = adept.model({vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
                       num_attention_heads = 2, num_key_value_heads = 1}, {seed = 9})
m:freeze("^model%.embed_tokens%.")
local opt = adept.adamw(m, {lr = 2e-2, weight_decay = 0.1})
local function micro(i)
  local ids = {}
  for r = 1, 2 do
    local row = {}
    for t = 1, 9 do row[t] = (i * 17 + r * 7 + t * t) % 29 end
    ids[r] = row
  end
  return ids
end
local every = {[2] = function(ctx)
  -- LR scales refreshed from training state: must be restored exactly on resume
  ctx.optimizer:set_lr_scales({["model.layers.1.self_attn.q_proj.weight"] = 0.5 + ctx.step / 10})
  if ctx.step == 4 then ctx.model:freeze("^model%.layers%.0%.mlp%.") end
end}
if a.kill_at then
  every[a.kill_at] = function()
    -- any thread may run the handler, later than kill returns on a busy machine: wait for the flag
    os.execute("kill -TERM " .. adept.getpid())
    for _ = 1, 500 do if adept.interrupted() then break end adept.sleep(0.01) end
  end
end
adept.train{model = m, optimizer = opt, data = micro, steps = 6, grad_accum = 2, clip = 1.0,
  schedule = adept.schedule.cosine{warmup = 2}, every = every, progress = false,
  checkpoint = {dir = a.out .. "/ckpt", every = 2, keep = 2}, resume = true, log = a.out .. "/metrics.jsonl"}
adept.save_weights(m, a.out .. "/final.safetensors")
]])

  local function run(args, env)
    return helpers.run((env or "") .. " " .. exe .. " " .. recipe .. " " .. args)
  end

  local function slurp(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end

  local straight
  local function straight_run()
    if straight then return straight end
    local d = tmpdir()
    local out, ok = run("out=" .. d)
    assert(ok, out)
    straight = {losses = train_losses(d .. "/metrics.jsonl"), weights = slurp(d .. "/final.safetensors"), dir = d}
    return straight
  end

  it("resumes after SIGTERM with bitwise-identical losses and weights", function()
    local ref = straight_run()
    assert.equals(6, #ref.losses)
    local d = tmpdir()
    local out, ok, code = run("out=" .. d .. " kill_at=3")
    assert.is_false(ok)
    assert.equals(143, code)
    assert.matches("interrupted by SIGTERM at step 3", out, 1, true)
    assert.matches("resume", out, 1, true)
    assert.equals("directory", adept.fs.exists(d .. "/ckpt/step_00000003"))
    out, ok = run("out=" .. d)
    assert.is_true(ok, out)
    local got = train_losses(d .. "/metrics.jsonl")
    assert.equals(#ref.losses, #got)
    for i = 1, #got do assert.equals(ref.losses[i], got[i]) end -- bitwise (JSON round-trips doubles)
    assert.equals(ref.weights, slurp(d .. "/final.safetensors"))
    -- keep = 2: only the newest two checkpoints remain
    local names = {}
    for _, n in ipairs(adept.fs.list(d .. "/ckpt")) do if n ~= ".adept.lock" then names[#names + 1] = n end end
    assert.same({"step_00000004", "step_00000006"}, names)
  end)

  it("survives SIGKILL in the middle of a checkpoint write and resumes from the previous one", function()
    local ref = straight_run()
    local d = tmpdir()
    os.execute(("ADEPT_TEST_CHECKPOINT_PAUSE=4:60 %s %s out=%s >%s/log 2>&1 & echo $! > %s/pid"):format(
      exe, recipe, d, d, d))
    local pid = tonumber(slurp(d .. "/pid"))
    local paused
    for _ = 1, 600 do -- up to 60 s for the child to reach the write of step 4
      for _, n in ipairs(adept.fs.exists(d .. "/ckpt") and adept.fs.list(d .. "/ckpt") or {}) do
        if n:match("^%.tmp%-step_00000004") and adept.fs.exists(d .. "/ckpt/" .. n .. "/.test-paused") then paused = n end
      end
      if paused then break end
      adept.sleep(0.1)
    end
    assert.is_not_nil(paused, "the child never reached the checkpoint write: " .. slurp(d .. "/log"))
    os.execute("kill -KILL " .. pid)
    for _ = 1, 100 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      adept.sleep(0.05)
    end
    -- the previous checkpoint is intact, the half-written one is not in place
    assert.equals("directory", adept.fs.exists(d .. "/ckpt/step_00000002"))
    assert.is_false(adept.fs.exists(d .. "/ckpt/step_00000004"))
    local out, ok = run("out=" .. d)
    assert.is_true(ok, out)
    assert.matches("resumed from .*step_00000002", out)
    local got = train_losses(d .. "/metrics.jsonl")
    assert.equals(#ref.losses, #got)
    for i = 1, #got do assert.equals(ref.losses[i], got[i]) end
    assert.equals(ref.weights, slurp(d .. "/final.safetensors"))
    for _, n in ipairs(adept.fs.list(d .. "/ckpt")) do assert.is_nil(n:match("^%.tmp"), "stale " .. n) end
  end)
end)
