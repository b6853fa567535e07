-- Training checkpoints: <dir>/step_00000100/ = an HF model directory (m:save, f32 so resume is exact) +
-- trainer_state.safetensors (Adam moments, LR scales, step, data cursor, trainable set, seed) + manifest.json
-- (every file's size and SHA-256 and the step, written last). Written under <dir>/.tmp-step_...-<pid>, fsynced,
-- then renamed: a crash never leaves a half checkpoint in place. The checks are the engine's
-- (engine/train/ckpt_dir.c, engine/io/runlock.c); this file orders them.
local adept = require "adept"
local M = {}

local function name_of(step) return ("step_%08d"):format(step) end

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

-- Writes the checkpoint of `step`; keeps the newest `keep` (>= 1) and never removes the one just written.
function M.save(dir, step, m, opt, trainer, keep)
  adept.fs.mkdir_p(dir)
  local final = dir .. "/" .. name_of(step)
  local tmp = ("%s/.tmp-%s-%d"):format(dir, name_of(step), adept.getpid())
  adept.fs.remove_tree(tmp)
  adept.fs.mkdir_p(tmp)
  local ok, err = pcall(function()
    write_model(m, tmp)
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

-- Restores weights, trainable set, optimizer state and LR scales into m and opt (the engine checks names,
-- shapes and dtypes against the model first); returns the trainer table.
function M.load(path, m, opt)
  local files = weight_files(path)
  if #files == 0 then error("adept.train: checkpoint " .. path .. " holds no model.safetensors", 3) end
  local meta = opt:load_state(path .. "/trainer_state.safetensors")
  local ok, tr = pcall(adept.json.decode, meta.trainer or "")
  if not ok then tr = nil end
  if type(tr) ~= "table" or math.type(tr.step) ~= "integer" then
    error("adept.train: " .. path .. "/trainer_state.safetensors has no valid trainer metadata", 3)
  end
  adept.load_weights(m, files)
  return tr
end

return M
