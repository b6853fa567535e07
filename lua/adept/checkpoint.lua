-- Training checkpoints: <dir>/step_00000100/ = the weights + trainer_state.safetensors (Adam moments, LR scales,
-- step, data cursor, trainable set, seed) + manifest.json (every file's size and SHA-256 and the step, written
-- last). Written under <dir>/.tmp-step_...-<pid>, fsynced, then renamed: a crash never leaves a half checkpoint
-- in place. The weights are either the whole model (an HF directory, m:save in f32 so resume is exact) or
-- rows.safetensors: only the rows training can have changed, in f32, with the identity of the base they apply
-- to (M.base_identity), which a resume checks before loading. The checks are the engine's
-- (engine/train/ckpt_dir.c, engine/io/runlock.c); this file orders them.
local adept = require "adept"
local M = {}

local function name_of(step) return ("step_%08d"):format(step) end

local ROWS = "rows.safetensors"

-- Names of the model's weight files in a checkpoint (single file or shards).
-- The names in dir, or none when it does not exist (adept.fs.list raises on an unreadable directory).
local function list_names(dir)
  return adept.fs.exists(dir) == "directory" and adept.fs.list(dir) or {}
end

local function weight_files(dir)
  local names = list_names(dir)
  local files = {}
  for _, n in ipairs(names) do
    if n == "model.safetensors" or n:match("^model%-%d+%-of%-%d+%.safetensors$") then files[#files + 1] = dir .. "/" .. n end
  end
  return files
end

local function write_model(m, tmp)
  if m.save then
    -- f32: checkpoints must hold the exact training weights (a bf16 copy would not resume bitwise)
    m:save(tmp, {dtype = "f32"})
    if #weight_files(tmp) > 0 then return end
  end
  adept.save_weights(m, tmp .. "/model.safetensors")
end

-- Test hook: ADEPT_TEST_CHECKPOINT_PAUSE=<step>:<seconds> pauses inside the write of that step's checkpoint
-- (after the files, before the rename) and drops a marker file, so a test can SIGKILL mid-write.
local function test_pause(tmp, step)
  local spec = os.getenv("ADEPT_TEST_CHECKPOINT_PAUSE")
  if not spec then return end
  local at, secs = spec:match("^(%d+):([%d%.]+)$")
  if at and tonumber(at) == step then
    local f = io.open(tmp .. "/.test-paused", "w")
    if f then f:close() end
    adept.sleep(tonumber(secs))
  end
end

-- One writer per checkpoint directory: the lock file holds the writer's PID; a second writer is refused at once
-- naming it. The returned handle releases on :release() (and on exit, however the process ends).
function M.lock(dir)
  adept.fs.mkdir_p(dir)
  return adept.fs.lock(dir .. "/.adept.lock")
end

-- The identity of the base a rows checkpoint applies to: SHA-256 of a header line and, for every row of m not in
-- `held` (a set of names), in table order, "<name> <shape> <SHA-256 of its f32 values>". It names the values of
-- exactly the rows the checkpoint does not restore, so it catches another base file, another seed of an
-- in-memory model, other surgery (expand, LoRA: other names or shapes) alike, whatever the files' layout or
-- dtype. `cache` (name -> row digest, optional) keeps the digests taken at the start of training: a row not
-- held has not trained since, so its digest does not change. Returns the hex digest and the number of rows.
function M.base_identity(m, held, cache)
  local lines, n = {"adeptlua base identity 1\n"}, 0
  for _, p in ipairs(m:params()) do
    if not held[p.name] then
      local d = cache and cache[p.name]
      if not d then
        d = adept.row_sha256(m, p.name)
        if cache then cache[p.name] = d end
      end
      lines[#lines + 1] = ("%s %s %s\n"):format(p.name, table.concat(p.shape, "x"), d)
      n = n + 1
    end
  end
  return adept.sha256(table.concat(lines)), n
end

-- Writes the checkpoint of `step`; keeps the newest `keep` (>= 1) and never removes the one just written.
-- rows = nil writes the whole model; rows = {names = {...}, base = hex, base_rows = n} writes only those rows
-- (rows.safetensors) bound to the base identity.
function M.save(dir, step, m, opt, trainer, keep, rows)
  adept.fs.mkdir_p(dir)
  local final = dir .. "/" .. name_of(step)
  local tmp = ("%s/.tmp-%s-%d"):format(dir, name_of(step), adept.getpid())
  adept.fs.remove_tree(tmp)
  adept.fs.mkdir_p(tmp)
  local ok, err = pcall(function()
    if rows then
      adept.save_rows(m, tmp .. "/" .. ROWS, rows.names, rows.base, rows.base_rows)
    else
      write_model(m, tmp)
    end
    -- the trainable set, moments and LR scales are in the trainer state the engine writes (adept/checkpoint.h)
    opt:save_state(tmp .. "/trainer_state.safetensors", {trainer = adept.json.encode(trainer)})
    -- refuses non-finite weights or moments: a checkpoint in place is one a resume can trust
    adept.fs.checkpoint_seal(tmp, step)
  end)
  if not ok then
    pcall(adept.fs.remove_tree, tmp)
    error(err, 0)
  end
  test_pause(tmp, step)
  adept.fs.fsync_tree(tmp)
  if adept.fs.exists(final) then adept.fs.remove_tree(final) end -- same step written again (a rerun)
  adept.fs.rename(tmp, final)
  M.prune(dir, keep, step)
  return final
end

-- Checkpoints renamed into place (step_<n> directories), oldest first; verify() says whether one is whole.
function M.list(dir)
  local names = list_names(dir)
  local out = {}
  for _, n in ipairs(names) do
    local step = n:match("^step_(%d+)$")
    if step and math.tointeger(tonumber(step)) and adept.fs.exists(dir .. "/" .. n) == "directory" then
      out[#out + 1] = {step = math.tointeger(tonumber(step)), path = dir .. "/" .. n, name = n}
    end
  end
  table.sort(out, function(a, b) return a.step < b.step end)
  return out
end

function M.newest(dir)
  local all = M.list(dir)
  return all[#all] and all[#all].path or nil
end

-- Removes leftovers of interrupted writes whose writer is dead, then keeps the newest `keep` checkpoints (all
-- when keep is nil) up to `written`, the step just written, which is never removed. Checkpoints past it (left
-- by a run that resumed from an earlier one after a failed verification) are not this rotation's to judge:
-- they stay until the run writes their step again, and a resume verifies them.
function M.prune(dir, keep, written)
  adept.fs.checkpoint_clean(dir)
  if not keep then return end
  assert(math.type(keep) == "integer" and keep >= 1, "checkpoint keep must be an integer >= 1")
  local older = {}
  for _, c in ipairs(M.list(dir)) do
    if written == nil or c.step < written then older[#older + 1] = c end
  end
  local room = written == nil and keep or keep - 1
  for i = 1, #older - room do adept.fs.remove_tree(older[i].path) end
end

-- The newest checkpoint of `dir` that verifies (files, sizes, SHA-256 against its manifest, step equal to its
-- name and at most max_step, weights finite), or nil when there is none at all. A newer one that fails is
-- named on stderr with its reason, with the one the run falls back to; when none verifies, the error names
-- each and why. A checkpoint without a manifest (written before manifests existed) is checked for what can
-- be (step, finiteness, well-formed files) and used with a warning.
function M.resume_point(dir, max_step)
  local all = M.list(dir)
  local rejected = {}
  for i = #all, 1, -1 do
    local c = all[i]
    local ok, res = pcall(adept.fs.checkpoint_verify, c.path, c.step, max_step)
    if ok then
      if #rejected > 0 then
        local why = {}
        for _, r in ipairs(rejected) do why[#why + 1] = ("%s (%s)"):format(r.path, r.why) end
        adept.log("warn", ("adept.train: the newest checkpoint does not verify: %s; falling back to %s, the newest "
                           .. "that does"):format(table.concat(why, "; "), c.path))
      end
      if res == false then
        adept.log("warn", ("adept.train: %s has no manifest.json (written by an earlier adeptlua): its files cannot be "
                           .. "checked against checksums; its step and weights were checked"):format(c.path))
      end
      return c.path, rejected
    end
    rejected[#rejected + 1] = {path = c.path, why = tostring(res):gsub("^adept%.fs%.checkpoint_verify: ", "")}
  end
  if #rejected == 0 then return nil, rejected end
  local lines = {}
  for _, r in ipairs(rejected) do lines[#lines + 1] = ("  %s: %s"):format(r.path, r.why) end
  error(("adept.train: no checkpoint in %s verifies, so there is nothing to resume from:\n%s\n(move them aside "
         .. "to start afresh)"):format(dir, table.concat(lines, "\n")), 0)
end

-- A rows checkpoint's metadata, after checking that it applies to m: the identity of m's rows it does not hold
-- must be the one it was written against. Nothing of m changes here.
local function check_base(path, m, cache)
  local rows_path = path .. "/" .. ROWS
  local meta = adept.json.decode(adept.read_rows(rows_path))
  local held = {}
  for _, name in ipairs(meta.rows) do held[name] = true end
  local have, n = M.base_identity(m, held, cache)
  if have ~= meta.base then
    error(("adept.train: checkpoint %s holds %d trained rows for base %s (the SHA-256 of its %d other rows), but "
           .. "the model this recipe built is base %s (%d rows): another base model, seed or surgery (expand, "
           .. "LoRA) than the run that wrote it. Rebuild that model, or move the checkpoints aside to start "
           .. "afresh"):format(path, #meta.rows, meta.base, math.tointeger(meta.base_rows) or -1, have, n), 0)
  end
  adept.read_rows(rows_path, m) -- every row a parameter of m with its shape, before anything is loaded
  return meta
end

-- Restores weights, trainable set, optimizer state and LR scales into m and opt (the engine checks names,
-- shapes and dtypes against the model first); returns the trainer table and, for a rows checkpoint, its
-- metadata ({base=, base_rows=, rows={names}}). A rows checkpoint is checked against m's base first (`cache`:
-- row digests, as for M.base_identity): on a mismatch nothing is loaded.
function M.load(path, m, opt, cache)
  local files = weight_files(path)
  local has_rows = adept.fs.exists(path .. "/" .. ROWS) == "file"
  if #files == 0 and not has_rows then
    error("adept.train: checkpoint " .. path .. " holds no model.safetensors nor " .. ROWS, 3)
  end
  if #files > 0 and has_rows then
    error("adept.train: checkpoint " .. path .. " holds both model weights and " .. ROWS .. " (not written by adept.train)", 3)
  end
  local rows = has_rows and check_base(path, m, cache) or nil
  local meta = opt:load_state(path .. "/trainer_state.safetensors")
  local ok, tr = pcall(adept.json.decode, meta.trainer or "")
  if not ok then tr = nil end
  if type(tr) ~= "table" or math.type(tr.step) ~= "integer" then
    error("adept.train: " .. path .. "/trainer_state.safetensors has no valid trainer metadata", 3)
  end
  if rows then adept.read_rows(path .. "/" .. ROWS, m, true) else adept.load_weights(m, files) end
  return tr, rows
end

return M
