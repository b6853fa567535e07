-- Training checkpoints: <dir>/step_00000100/ = an HF model directory (m:save, f32 so resume is exact) +
-- trainer_state.safetensors (Adam moments, LR scales, step, data cursor, trainable set, seed).
-- Written under <dir>/.tmp-step_..., fsynced, then renamed: a crash never leaves a half checkpoint in place.
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

function M.save(dir, step, m, opt, trainer, keep)
  adept.fs.mkdir_p(dir)
  local final = dir .. "/" .. name_of(step)
  local tmp = ("%s/.tmp-%s-%d"):format(dir, name_of(step), adept.getpid())
  adept.fs.remove_tree(tmp)
  adept.fs.mkdir_p(tmp)
  write_model(m, tmp)
  -- the trainable set, moments and LR scales are in the trainer state the engine writes (adept/checkpoint.h)
  opt:save_state(tmp .. "/trainer_state.safetensors", {trainer = adept.json.encode(trainer)})
  test_pause(tmp, step)
  adept.fs.fsync_tree(tmp)
  if adept.fs.exists(final) then adept.fs.remove_tree(final) end -- same step written again (a rerun)
  adept.fs.rename(tmp, final)
  M.prune(dir, keep)
  return final
end

-- Complete checkpoints (renamed into place), oldest first.
function M.list(dir)
  local names = list_names(dir)
  local out = {}
  for _, n in ipairs(names) do
    local step = n:match("^step_(%d+)$")
    if step and adept.fs.exists(dir .. "/" .. n .. "/trainer_state.safetensors") then
      out[#out + 1] = {step = tonumber(step), path = dir .. "/" .. n}
    end
  end
  table.sort(out, function(a, b) return a.step < b.step end)
  return out
end

function M.newest(dir)
  local all = M.list(dir)
  return all[#all] and all[#all].path or nil
end

-- Keeps the newest `keep` checkpoints (all when keep is nil) and removes leftovers of interrupted writes.
function M.prune(dir, keep)
  local names = list_names(dir)
  local me = ("-%d$"):format(adept.getpid())
  for _, n in ipairs(names) do
    if n:match("^%.tmp%-step_%d+%-%d+$") and not n:match(me) then adept.fs.remove_tree(dir .. "/" .. n) end
  end
  if not keep then return end
  local all = M.list(dir)
  for i = 1, #all - keep do adept.fs.remove_tree(all[i].path) end
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
