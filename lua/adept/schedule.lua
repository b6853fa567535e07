-- Learning-rate schedules: pure functions of the step, so a resumed run continues the exact same curve.
-- A schedule is called as sched(step, total) -> factor, where step is the 0-based index of the update
-- being made and total the run's step count (adept.train passes it); any Lua function(step) works too.
--
-- Choices (written down because conventions differ):
--   * warmup is linear and reaches 1 at the last warmup step: factor = (step+1)/warmup for step < warmup,
--     so the first update is never made with a zero learning rate (unlike HF's get_*_with_warmup).
--   * cosine decays from 1 at step=warmup to min_ratio at step=total (HF/nanoGPT shape, floor min_ratio).
--   * linear decays from 1 at step=warmup to min_ratio (default 0) at step=total.
--   * `total` given to a schedule wins over the one adept.train passes.
local M = {}

local Schedule = {}
Schedule.__index = Schedule
Schedule.__call = function(self, step, total) return self.fn(step, total) end
Schedule.__tostring = function(self) return self.desc end

local function make(desc, fn) return setmetatable({desc = desc, fn = fn}, Schedule) end

local function check_opts(name, o, allowed)
  if o == nil then o = {} end
  if type(o) ~= "table" then
    error(("bad argument #1 to 'schedule.%s' (table expected, got %s)"):format(name, type(o)), 3)
  end
  for k in pairs(o) do
    if not allowed[k] then error(("schedule.%s: unknown option '%s'"):format(name, tostring(k)), 3) end
  end
  local function num(key, def, min)
    local v = o[key]
    if v == nil then return def end
    if type(v) ~= "number" or v ~= v or (min and v < min) then
      error(("schedule.%s: %s must be a number >= %s, got %s"):format(name, key, tostring(min), tostring(v)), 4)
    end
    return v
  end
  return o, num
end

local function warmup_factor(step, warmup)
  if step < warmup then return (step + 1) / warmup end
  return nil
end

local function need_total(name, total)
  if type(total) ~= "number" or total < 1 then
    error(("schedule.%s: no total step count (give total= or use it inside adept.train)"):format(name), 3)
  end
  return total
end

-- Warmup, then a decay from 1 to min_ratio over the remaining steps: shape(progress in [0, 1]) -> [0, 1]
-- is the fraction of the way from min_ratio back up to 1 (1 at the start of the decay, 0 at its end).
local function decay(name, o, default_min_ratio, shape)
  local _, num = check_opts(name, o, {warmup = true, min_ratio = true, total = true})
  local warmup, min_ratio = num("warmup", 0, 0), num("min_ratio", default_min_ratio, 0)
  local fixed_total = num("total", nil, 1)
  return make(("%s(warmup=%g, min_ratio=%g)"):format(name, warmup, min_ratio), function(step, total)
    local w = warmup_factor(step, warmup)
    if w then return w end
    local T = need_total(name, fixed_total or total)
    local progress = math.min(1, (step - warmup) / math.max(1, T - warmup))
    return min_ratio + (1 - min_ratio) * shape(progress)
  end)
end

function M.cosine(o)
  return decay("cosine", o, 0.1, function(p) return 0.5 * (1 + math.cos(math.pi * p)) end)
end

function M.linear(o)
  return decay("linear", o, 0, function(p) return 1 - p end)
end

function M.constant(o)
  local _, num = check_opts("constant", o, {warmup = true, value = true})
  local warmup, value = num("warmup", 0, 0), num("value", 1, 0)
  return make(("constant(warmup=%g)"):format(warmup), function(step)
    local w = warmup_factor(step, warmup)
    return w and w * value or value
  end)
end

-- chain{{until_step, sched}, {until_step, sched}, ..., {sched}}: each piece runs until its (absolute)
-- until_step and sees steps counted from its own start and a total equal to its own length; the last
-- piece may omit until_step and then runs to the end of training.
function M.chain(pieces)
  if type(pieces) ~= "table" or #pieces == 0 then
    error("bad argument #1 to 'schedule.chain' (non-empty array of {until_step, schedule} expected)", 2)
  end
  local parts, start = {}, 0
  for i, p in ipairs(pieces) do
    if type(p) ~= "table" then error(("schedule.chain: piece %d must be a table {until_step, schedule}"):format(i), 2) end
    local until_step, sched = p[1], p[2]
    if sched == nil then until_step, sched = nil, p[1] end
    if not (type(sched) == "function" or getmetatable(sched) == Schedule) then
      error(("schedule.chain: piece %d has no schedule"):format(i), 2)
    end
    if until_step ~= nil and (math.type(until_step) ~= "integer" or until_step <= start) then
      error(("schedule.chain: piece %d must end at an integer step after %d, got %s"):format(i, start, tostring(until_step)), 2)
    end
    if until_step == nil and i < #pieces then error(("schedule.chain: only the last piece may omit until_step (piece %d)"):format(i), 2) end
    parts[#parts + 1] = {from = start, to = until_step, sched = sched}
    start = until_step or start
  end
  return make("chain", function(step, total)
    for _, p in ipairs(parts) do
      if p.to == nil or step < p.to then
        local len = (p.to or total or step + 1) - p.from
        return p.sched(step - p.from, len)
      end
    end
    local last = parts[#parts] -- past the last bounded piece: hold its final value
    return last.sched(last.to - 1 - last.from, last.to - last.from)
  end)
end

-- A schedule value as the trainer uses it: nil -> constant 1; a schedule or function -> itself.
function M.resolve(s)
  if s == nil then return function() return 1 end end
  if type(s) == "function" or getmetatable(s) == Schedule then return s end
  error(("schedule must be a schedule or a function(step) -> factor, got %s"):format(type(s)), 3)
end

return M
