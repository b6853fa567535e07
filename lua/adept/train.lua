-- adept.train{...}: the training loop around the engine's step (adept.train_step: forward/backward over the
-- micro-batches, gradient all-reduce, clipping, AdamW), with schedules, evaluation, logging and checkpoints.
-- See DESIGN.md §4, docs/training.md and docs/engine.md.
local adept = require "adept"
local schedule = require "adept.schedule"
local ckpt = require "adept.checkpoint"

local KNOWN = {
  model = true, optimizer = true, data = true, steps = true, batch_size = true, grad_accum = true,
  schedule = true, clip = true, every = true, eval = true, eval_every = true, eval_batches = true,
  checkpoint = true, resume = true, log = true, log_every = true, progress = true, skip_nonfinite = true,
  peak_flops = true, eval_at_start = true, bucket_mb = true,
}

local function argerr(msg, ...) error("adept.train: " .. msg:format(...), 0) end

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- ---- data sources ---------------------------------------------------------------------------------
-- Every source hands out micro-batches and has a cursor (a JSON-able value) that resume restores:
--   function(i) -> batch   (i: 0-based micro-batch index; the cursor is i)
--   an array of batches    (cycled; the cursor is the index)
--   a dataset with :next_batch(bs) and :cursor()/:set_cursor(c) (adept.dataset views)
--   any object with :batches(bs) returning an iterator (the cursor counts batches; resume replays)
-- Under N processes (adept.dist) each source hands this rank its share of the global micro-batches, and the
-- cursor is global (a run resumes from it with any number of processes): a function or an array gives rank r
-- the global micro-batches r, r+N, r+2N, ... (N ranks = one process with N times the grad_accum); a dataset's
-- :next_batch(bs) gives rank r its rows of a global batch of N*bs (N ranks with bs = one process with N*bs);
-- an iterator source gives rank r every N-th batch.
local function data_source(data, batch_size)
  local rank, world = adept.dist.rank(), adept.dist.world_size()
  if type(data) == "function" then
    local g = 0 -- global micro-batches handed out so far
    return {
      next = function() local b = data(g + rank); g = g + world; return b end,
      cursor = function() return {index = g} end,
      set_cursor = function(c) g = assert(math.tointeger(c.index), "bad data cursor") end,
    }
  end
  if type(data) == "table" and data[1] ~= nil then
    local g, n = 0, #data
    return {
      next = function() local b = data[(g + rank) % n + 1]; g = g + world; return b end,
      cursor = function() return {index = g} end,
      set_cursor = function(c) g = assert(math.tointeger(c.index), "bad data cursor") end,
    }
  end
  if data == nil then argerr("data is required (a dataset, an array of batches or a function(i) -> batch)") end
  if data.next_batch and data.cursor and data.set_cursor then
    return {
      next = function() return data:next_batch(batch_size) end,
      cursor = function() return data:cursor() end,
      set_cursor = function(c) data:set_cursor(c) end,
    }
  end
  if data.batches then
    local iter, consumed = nil, 0
    local function restart() iter = data:batches(batch_size) end
    local src = {}
    local function pull()
      if not iter then restart() end
      local b = iter()
      if b == nil then restart(); b = iter() end -- next epoch
      consumed = consumed + 1
      return b
    end
    function src.next()
      local mine
      for r = 0, world - 1 do
        local b = pull()
        if r == rank then mine = b end
      end
      return mine
    end
    src.cursor = function() return {consumed = consumed} end
    function src.set_cursor(c)
      restart()
      local k = assert(math.tointeger(c.consumed), "bad data cursor")
      consumed = 0
      for _ = 1, k do pull() end
    end
    return src
  end
  argerr("data must be a dataset, an array of batches or a function(i) -> batch, got %s", type(data))
end

-- ---- evaluation ---------------------------------------------------------------------------------------
-- The batches of an eval set, fixed once so every evaluation sees the same tokens.
local function eval_batches(ds, n, batch_size)
  if type(ds) == "table" and ds[1] ~= nil then return ds end
  if type(ds) == "table" or type(ds) == "userdata" then
    if ds.take then return ds:take(n, batch_size) end
    if ds.batches then
      local out = {}
      for b in ds:batches(batch_size) do
        out[#out + 1] = b
        if #out >= n then break end
      end
      return out
    end
  end
  error("adept.train: an eval set must be an array of batches or a dataset with :take or :batches", 0)
end

local function evaluate(m, sets, cache, n, batch_size)
  local loss, ppl, names = {}, {}, {}
  for name in pairs(sets) do names[#names + 1] = name end
  table.sort(names, function(a, b) return tostring(a) < tostring(b) end) -- one order on every rank: the sums are collectives
  for _, name in ipairs(names) do
    local ds = sets[name]
    cache[name] = cache[name] or eval_batches(ds, n, batch_size)
    -- under N processes rank r evaluates batches r+1, r+1+N, ... and the sums are reduced (every rank is here)
    local world, rank = adept.dist.world_size(), adept.dist.rank()
    local nll, tok = 0, 0
    for i, b in ipairs(cache[name]) do
      if (i - 1) % world == rank then
        local s, k = adept.nll(m, b)
        nll, tok = nll + s, tok + k
      end
    end
    if world > 1 then nll, tok = table.unpack(adept.dist.sum({nll, tok})) end
    loss[name] = tok > 0 and nll / tok or 0 / 0
    ppl[name] = math.exp(loss[name])
  end
  return loss, ppl
end

-- ---- the metrics log ----------------------------------------------------------------------------
local function open_log(path, keep_until_step)
  if not path then return nil end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then adept.fs.mkdir_p(dir) end
  -- on resume, drop lines past the checkpoint: the run will produce them again
  if keep_until_step then
    local kept = {}
    local f = io.open(path, "r")
    if f then
      for line in f:lines() do
        local ok, obj = pcall(adept.json.decode, line) -- a line cut by a kill is dropped
        if ok and type(obj) == "table" and (tonumber(obj.step) or 0) <= keep_until_step then kept[#kept + 1] = line end
      end
      f:close()
    end
    local tmp = path .. ".tmp"
    local w = assert(io.open(tmp, "w"))
    for _, line in ipairs(kept) do w:write(line, "\n") end
    w:close()
    assert(os.rename(tmp, path))
  end
  local f, err = io.open(path, "a")
  if not f then error("adept.train: cannot open the log: " .. tostring(err), 0) end
  f:setvbuf("line")
  return f
end

local function log_line(f, obj)
  if f then f:write(adept.json.encode(obj), "\n") end
end

-- ---- FLOPs for MFU --------------------------------------------------------------------------------
-- Per trained token: forward 2N, backward through the network 2N, weight gradients 2·N_trainable, and
-- attention 12·L·C·T (PaLM's formula for the score and value products, forward and backward).
local function flops_per_token(m, seq_len)
  local mem = adept.memory(m)
  local c = m.config
  local L, C = c.num_hidden_layers or 0, c.hidden_size or 0
  return 4 * mem.total_params + 2 * mem.trainable_params + 12 * L * C * (seq_len or 0)
end

-- Positions per row of a batch (T), for the attention term: tensors or Lua arrays, either batch form.
local function batch_seq_len(b)
  local ids, minus = b, 1
  if type(b) == "table" and b.inputs ~= nil then ids, minus = b.inputs, 0 end
  if type(ids) == "table" then
    local row = type(ids[1]) == "table" and ids[1] or ids
    return math.max(0, #row - minus)
  end
  local ok, shape = pcall(function() return ids:shape() end)
  if not ok then return 0 end
  return math.max(0, shape[#shape] - minus)
end

-- MFU is reported against the sgemm peak measured here once per process (peak_flops= overrides).
local peak_cache
local function measured_peak()
  if peak_cache == nil then peak_cache = adept.sgemm_peak(512, 0.2) end
  return peak_cache
end

-- ---- the loop ----------------------------------------------------------------------------------------
local function run(cfg, held)
  if type(cfg) ~= "table" then error("bad argument #1 to 'train' (table expected, got " .. type(cfg) .. ")", 0) end
  for k in pairs(cfg) do if not KNOWN[k] then argerr("unknown option '%s'", tostring(k)) end end
  local m, opt = cfg.model, cfg.optimizer
  if m == nil then argerr("model is required") end
  if opt == nil then argerr("optimizer is required (adept.adamw(m, {...}))") end
  local steps = cfg.steps
  if math.type(steps) ~= "integer" or steps < 0 then argerr("steps must be a non-negative integer, got %s", tostring(steps)) end
  local batch_size = cfg.batch_size or 8
  local accum = cfg.grad_accum or 1
  if math.type(accum) ~= "integer" or accum < 1 then argerr("grad_accum must be an integer >= 1, got %s", tostring(accum)) end
  local clip = cfg.clip
  if clip ~= nil and (type(clip) ~= "number" or not (clip > 0)) then argerr("clip must be a number > 0, got %s", tostring(clip)) end
  local sched = schedule.resolve(cfg.schedule)
  local every = cfg.every or {}
  for n, fn in pairs(every) do
    if math.type(n) ~= "integer" or n < 1 or type(fn) ~= "function" then
      argerr("every must map step intervals (integers >= 1) to functions")
    end
  end
  -- intervals are checked here, before step 1, so a bad value never surfaces later as a raw Lua error
  local function interval(name, v, default)
    if v == nil then return default end
    if math.type(v) ~= "integer" or v < 1 then argerr("%s must be an integer >= 1, got %s", name, tostring(v)) end
    return v
  end
  if math.type(batch_size) ~= "integer" or batch_size < 1 then
    argerr("batch_size must be an integer >= 1, got %s", tostring(batch_size))
  end
  -- all-reduce buckets under several processes (PyTorch DDP's bucket_cap_mb, 25 by default): the gradient
  -- slab is reduced in buckets of this size while backward goes on; 0 reduces it once after backward
  local bucket_mb = cfg.bucket_mb == nil and 25 or cfg.bucket_mb
  if type(bucket_mb) ~= "number" or not (bucket_mb >= 0 and bucket_mb <= 1048576) then
    argerr("bucket_mb must be a number of MiB in [0, 1048576] (0: one all-reduce after backward), got %s", tostring(cfg.bucket_mb))
  end
  local eval_every = interval("eval_every", cfg.eval_every, nil)
  local eval_n = interval("eval_batches", cfg.eval_batches, 16)
  local log_every = interval("log_every", cfg.log_every, 1)
  if cfg.eval ~= nil and type(cfg.eval) ~= "table" then
    argerr("eval must be a table of name = dataset or array of batches, got %s", type(cfg.eval))
  end
  local ck = cfg.checkpoint
  if ck ~= nil and (type(ck) ~= "table" or type(ck.dir) ~= "string") then argerr("checkpoint must be {dir=, every=, keep=, full=}") end
  if ck then
    for k in pairs(ck) do
      if k ~= "dir" and k ~= "every" and k ~= "keep" and k ~= "full" then
        argerr("unknown checkpoint option '%s' (dir, every, keep, full)", tostring(k))
      end
    end
    if ck.full ~= nil and type(ck.full) ~= "boolean" then
      argerr("checkpoint.full must be a boolean (true: every checkpoint holds the whole model), got %s", tostring(ck.full))
    end
    if ck.every ~= nil and (math.type(ck.every) ~= "integer" or ck.every < 1) then
      argerr("checkpoint.every must be an integer >= 1 (steps between checkpoints), got %s", tostring(ck.every))
    end
    -- keep = 0 would delete the checkpoint just written: a typo-class mistake, refused rather than read as 1
    if ck.keep ~= nil and (math.type(ck.keep) ~= "integer" or ck.keep < 1) then
      argerr("checkpoint.keep must be an integer >= 1 (how many checkpoints to keep; the newest is always kept), got %s",
             tostring(ck.keep))
    end
  end
  local src = data_source(cfg.data, batch_size)

  -- one writer per run directory: a second run on the same checkpoint directory or log is refused here, at
  -- start, naming the first one's PID (the engine's lock; released by train() however the run ends). Under
  -- several processes (adept.dist) only rank 0 writes, so only rank 0 locks.
  if cfg.log ~= nil and type(cfg.log) ~= "string" then argerr("log must be a file path, got %s", type(cfg.log)) end
  local writer = adept.dist.is_main()
  if ck and writer then held[#held + 1] = ckpt.lock(ck.dir) end
  if cfg.log and writer then
    local dir = cfg.log:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then adept.fs.mkdir_p(dir) end
    held[#held + 1] = adept.fs.lock(cfg.log .. ".lock")
  end

  -- Rows checkpoints (unless checkpoint.full): a checkpoint holds the rows trainable at any step of this run (and
  -- of the runs it resumes), the only ones training changed, plus the identity of every other row's values,
  -- taken from their digests at the start of training (`digests`, name -> SHA-256; ckpt.base_identity).
  local rows_ckpt = ck and not ck.full
  local held_rows, digests = {}, {}
  local function note_trainable()
    for _, p in ipairs(m:params()) do if p.trainable then held_rows[p.name] = true end end
  end

  local state = {step = 0, tokens_seen = 0, elapsed_before = 0, skipped = 0}
  local resumed_from
  if cfg.resume and ck then
    -- the newest checkpoint that verifies (checksums, step, finite weights); newer ones that fail are named
    local dir = ckpt.resume_point(ck.dir, steps)
    if dir then
      -- a sharded optimizer (shard_optimizer) reads the whole state on every rank, then keeps its block
      local sharded = opt.sharded and opt:sharded()
      if sharded then opt:gather_state() end
      -- a rows checkpoint is checked against the base this recipe built before anything is loaded
      local tr, rows = ckpt.load(dir, m, opt, digests)
      if rows then for _, name in ipairs(rows.rows) do held_rows[name] = true end end
      if sharded then opt:scatter_state() end
      state.step, state.tokens_seen = tr.step, tr.tokens_seen
      state.elapsed_before, state.skipped = tr.elapsed or 0, tr.skipped or 0
      if tr.data_cursor ~= nil then src.set_cursor(tr.data_cursor) end
      resumed_from = dir
      adept.log("info", ("resumed from %s at step %d"):format(dir, state.step))
      if tr.seed ~= nil and tr.seed ~= adept.seed then
        adept.log("warn", ("adept.train: the checkpoint was written with seed %s, this run has seed %s: the data order "
                           .. "and any sampling may differ from the interrupted run"):format(tostring(tr.seed), tostring(adept.seed)))
      end
    end
  end
  if cfg.resume and not ck then adept.log("warn", "adept.train: resume=true without checkpoint={dir=...}: starting afresh") end
  if rows_ckpt and writer then
    -- the frozen rows' digests now, before the first update: the base the checkpoints will name
    note_trainable()
    ckpt.base_identity(m, held_rows, digests)
  end
  local start_step = state.step
  local main, world = adept.dist.is_main(), adept.dist.world_size()
  local logf = main and open_log(cfg.log, resumed_from and state.step or nil) or nil

  local function trainer_state()
    return {version = 1, step = state.step, tokens_seen = state.tokens_seen, skipped = state.skipped,
            elapsed = state.elapsed_before + (adept.now() - state.t0), data_cursor = src.cursor(),
            schedule = tostring(cfg.schedule or "constant"), seed = adept.seed, steps_total = steps}
  end
  local last_ckpt = resumed_from
  -- only rank 0 writes; every rank waits until the checkpoint is complete on disk before going on
  local function save_checkpoint()
    if not ck then return nil end
    local dir
    local sharded = opt.sharded and opt:sharded()
    if sharded then opt:gather_state() end -- every rank: the moments whole for rank 0 to write
    if main then
      -- every row trained (full_cpt): the rows checkpoint would be the whole model, so it is written as one
      local rows
      if rows_ckpt then
        note_trainable()
        local names, all = {}, m:params()
        for _, p in ipairs(all) do if held_rows[p.name] then names[#names + 1] = p.name end end
        if #names < #all then
          local base, n = ckpt.base_identity(m, held_rows, digests)
          rows = {names = names, base = base, base_rows = n}
        end
      end
      local ok, path = pcall(ckpt.save, ck.dir, state.step, m, opt, trainer_state(), ck.keep, rows)
      if not ok then
        error(("adept.train: step %d: the checkpoint was not written: %s. %s"):format(state.step, tostring(path),
          last_ckpt and ("The last good checkpoint is " .. last_ckpt) or "No checkpoint was written."), 0)
      end
      dir = path
    end
    if sharded then opt:scatter_state() end
    if world > 1 then dir = adept.dist.broadcast(dir) end
    last_ckpt = dir
    return last_ckpt
  end

  -- the progress line counts this process's steps, so its rate and ETA stay right after a resume
  local progress = cfg.progress ~= false and main and
      adept.progress(start_step > 0 and ("train (from step %d)"):format(start_step) or "train", steps - start_step) or nil
  state.t0 = adept.now()
  local tokens_this_run, fpt, peak = 0, nil, cfg.peak_flops
  if not peak and cfg.progress ~= false then peak = measured_peak() end
  local eval_cache, last_eval = {}, nil
  local ctx = {model = m, optimizer = opt, steps = steps}
  local last_loss, stopped = nil, false

  -- LR multipliers are logged whenever they change (a callback refreshed them), for reports
  local last_scales
  local function log_scales()
    local scales = {}
    for name, v in pairs(opt:lr_scales()) do scales[name] = type(v) == "number" and v or "rows" end
    local text = adept.json.encode(scales)
    if text ~= last_scales then
      if last_scales ~= nil or next(scales) ~= nil then
        log_line(logf, {type = "lr_scales", step = state.step, scales = scales})
      end
      last_scales = text
    end
  end

  local function run_eval()
    if not cfg.eval then return end
    local loss, ppl = evaluate(m, cfg.eval, eval_cache, eval_n, batch_size)
    last_eval = {loss = loss, perplexity = ppl}
    log_line(logf, {type = "eval", step = state.step, loss = loss, perplexity = ppl,
                    tokens_seen = state.tokens_seen, elapsed = state.elapsed_before + adept.now() - state.t0})
    ctx.eval = last_eval
  end

  log_scales()
  -- a fresh run measures the eval sets before the first update (the "before" of forgetting curves)
  if cfg.eval and state.step == 0 and cfg.eval_at_start ~= false and steps > 0 then run_eval() end
  while state.step < steps do
    local step = state.step
    -- the step's micro-batches, then forward, backward, gradient all-reduce, clipping and the update in one
    -- engine call (adept/train.h), which counts the target tokens (the gradient scale is 1 / their total) and
    -- refuses a step without any
    local mbs = {}
    for k = 1, accum do
      local b = src.next()
      if b == nil then error(("adept.train: the data ran out at step %d (micro-batch %d)"):format(step, k), 0) end
      mbs[k] = b
    end
    local factor = sched(step, steps)
    local lr = opt:lr() * factor
    local ok, r = pcall(adept.train_step, m, opt, mbs, {lr_factor = factor, clip = clip, bucket_mb = bucket_mb})
    if not ok then error(("adept.train: step %d: %s"):format(step + 1, r), 0) end
    local loss, gnorm, ntok = r.loss, r.grad_norm, r.tokens
    local bad = r.nonfinite and r.reason or nil
    state.step = step + 1
    state.tokens_seen = state.tokens_seen + ntok
    tokens_this_run = tokens_this_run + ntok
    if bad then
      if not cfg.skip_nonfinite then
        if logf then logf:close() end
        if progress then progress:finish("stopped: non-finite") end
        error(("adept.train: step %d: %s; stopping (skip_nonfinite=true skips such steps). %s"):format(
          state.step, bad, last_ckpt and ("The last good checkpoint is " .. last_ckpt) or "No checkpoint was written."), 0)
      end
      state.skipped = state.skipped + 1
      log_line(logf, {type = "skip", step = state.step, reason = bad, skipped = state.skipped})
    else
      last_loss = loss
    end

    local elapsed_run = adept.now() - state.t0
    ctx.step, ctx.loss, ctx.lr, ctx.grad_norm = state.step, loss, lr, gnorm
    ctx.tokens_seen, ctx.elapsed, ctx.skipped = state.tokens_seen, state.elapsed_before + elapsed_run, state.skipped
    local tps = elapsed_run > 0 and tokens_this_run / elapsed_run or 0
    fpt = fpt or flops_per_token(m, batch_seq_len(mbs[1]))
    local mfu = (peak and peak > 0) and tps * fpt / peak or nil
    if not bad and (state.step % log_every == 0 or state.step == steps) then
      log_line(logf, {type = "train", step = state.step, loss = loss, lr = lr, grad_norm = gnorm,
                      tokens_seen = state.tokens_seen, tokens_per_s = tps, elapsed = ctx.elapsed,
                      skipped = state.skipped, mfu = mfu,
                      allreduce_s = world > 1 and r.comm_seconds or nil, allreduce_bytes = world > 1 and r.comm_bytes or nil,
                      allreduce_wait_s = world > 1 and r.comm_wait_seconds or nil,
                      allreduce_calls = world > 1 and r.comm_calls or nil})
    end
    if progress then
      local extra = ("loss %.4f | lr %.2e | %.0f tok/s"):format(loss, lr, tps)
      if mfu then extra = extra .. (" | MFU %.1f%%"):format(100 * mfu) end
      progress:update(state.step - start_step, extra)
    end

    if cfg.eval and eval_every and state.step % eval_every == 0 then run_eval() end
    -- callbacks in increasing interval order, so the same step always runs them in the same order
    local intervals = {}
    for n in pairs(every) do if state.step % n == 0 then intervals[#intervals + 1] = n end end
    table.sort(intervals)
    ctx.stop = false
    for _, n in ipairs(intervals) do
      if every[n](ctx) == "stop" then ctx.stop = true end
    end
    if ctx.stop then stopped = true end
    if #intervals > 0 then
      log_scales()
      if rows_ckpt then note_trainable() end -- a callback may have unfrozen rows: they are held from now on
    end
    local interrupted = adept.interrupted()
    if world > 1 then -- every rank stops at the same step, or the checkpoint's broadcast would wait forever
      local any = adept.dist.all_reduce(adept.tensor({interrupted and 1 or 0})):table()[1]
      if any > 0 then interrupted = interrupted or "SIGTERM" end
    end
    if ck and ck.every and (state.step % ck.every == 0 or state.step == steps or stopped) then save_checkpoint()
    elseif ck and (stopped or interrupted) then save_checkpoint() end
    if interrupted then
      if logf then logf:close() end
      if progress then progress:finish("interrupted") end
      local how = ck and ("checkpoint written to %s; resume by running the same command again (resume=true)"):format(last_ckpt)
                  or "no checkpoint was configured (checkpoint={dir=...}), so progress since the start is lost"
      io.stderr:write(("adept.train: interrupted by %s at step %d: %s\n"):format(interrupted, state.step, how))
      io.stderr:flush()
      os.exit(interrupted == "SIGINT" and 130 or 143, true)
    end
    if stopped then break end
  end

  local ran = tokens_this_run > 0 or state.step > start_step
  if cfg.eval and ran and (not eval_every or state.step % eval_every ~= 0) then run_eval() end
  if ck and state.step > 0 and not (last_ckpt and last_ckpt:match("step_(%d+)$") and
      tonumber(last_ckpt:match("step_(%d+)$")) == state.step) then
    save_checkpoint()
  end
  if progress then progress:finish(last_loss and ("loss %.4f"):format(last_loss) or nil) end
  if logf then logf:close() end
  return {steps = state.step, loss = last_loss, tokens_seen = state.tokens_seen, skipped = state.skipped,
          elapsed = state.elapsed_before + adept.now() - state.t0, eval = last_eval, stopped = stopped,
          checkpoint = last_ckpt, resumed_from = resumed_from}
end

-- The loop's global side effects, undone however it ends: its signal handlers (one level of the engine's stack,
-- so a run inside another run's callback hands the outer run its handling back) and its directory locks.
local function train(cfg)
  adept.catch_signals(true)
  local held = {}
  local ok, res = pcall(run, cfg, held)
  adept.catch_signals(false)
  for i = #held, 1, -1 do held[i]:release() end
  if not ok then error(res, 0) end
  return res
end

return train
