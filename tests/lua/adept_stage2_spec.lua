-- ADEPT stage 2 through adept.train on a tiny random model: expand, freeze all but the copies, train with the
-- refresher every 2 steps; the scales change between refreshes, are applied and logged to metrics.jsonl.
local adept = require "adept"

local CFG = {vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 3,
             num_attention_heads = 4, num_key_value_heads = 2, rms_norm_eps = 1e-5}
local PROBE = {{{1, 5, 7, 2, 9, 4, 3, 11}, {8, 8, 1, 0, 22, 5, 6, 28}}}
local DATA = {{{3, 4, 5, 6, 7, 8, 9, 10}, {12, 13, 14, 15, 16, 17, 18, 19}},
              {{20, 21, 22, 23, 24, 25, 26, 27}, {2, 4, 6, 8, 10, 12, 14, 16}}}

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = adept.json.decode(line) end
  return out
end

describe("adept.lr.refresher with adept.train", function()
  for _, granularity in ipairs({"tensor", "row"}) do
    it("refreshes the decoupled scales every N steps (first at N) and logs them (" .. granularity .. ")", function()
      local m = adept.model(CFG, {seed = 11, init_std = 0.4})
      local copies = m:expand(adept.select.least_important({[0] = 3, [1] = 1, [2] = 2}, 1), {init = "identity"})
      assert.same({2}, copies)
      m:freeze("all")
      for _, l in ipairs(copies) do m:unfreeze("^model%.layers%." .. l .. "%.") end
      local opt = adept.adamw(m, {lr = 1e-2, weight_decay = 0})
      local log = os.tmpname()
      local extra = os.tmpname()
      local r = adept.lr.refresher(m, opt, PROBE, {every = 2, normalize = "by_kind", granularity = granularity,
                                                   log = extra})
      local seen = {}
      adept.train{model = m, optimizer = opt, data = DATA, steps = 6, batch_size = 2, progress = false, log = log,
        every = {[r.every] = r.fn, [1] = function(ctx) seen[#seen + 1] = ctx.step end}}
      assert.same({2, 4, 6}, (function() local s = {}; for i, h in ipairs(r.history) do s[i] = h.step end; return s end)())
      local events = {}
      for _, e in ipairs(read_lines(log)) do if e.type == "lr_scales" then events[#events + 1] = e end end
      -- adept.train logs the scales when they change; row multipliers are written as "rows", so a later
      -- row refresh shows only in the refresher's own log
      assert.is_true(#events >= (granularity == "tensor" and 2 or 1), "lr_scales events logged: " .. #events)
      assert.equals(2, events[1].step)
      local n = 0
      for name in pairs(events[1].scales) do
        n = n + 1
        assert.truthy(name:match("^model%.layers%.2%."))
      end
      assert.equals(9, n)
      -- every refresh is in the refresher's own log with scores and scales; the scales change over training
      local refreshes = read_lines(extra)
      assert.equals(3, #refreshes)
      local a, b = adept.json.encode(refreshes[1].scales), adept.json.encode(refreshes[3].scales)
      assert.are_not.equal(a, b)
      -- by_kind: within the matrices and within the norms the range is [0, 2]
      local lo, hi = math.huge, -math.huge
      for name, s in pairs(refreshes[3].scales) do
        if not name:find("norm") then
          for _, v in ipairs(type(s) == "table" and s or {s}) do
            assert.is_true(v >= 0 and v <= 2, name .. ": scale " .. tostring(v)) -- a NaN fails here, not in min/max
            lo, hi = math.min(lo, v), math.max(hi, v)
          end
        end
      end
      assert.near(0, lo, 1e-9); assert.near(2, hi, 1e-9)
      -- the optimiser holds the last refresh's scales, and no probe gradient is left behind
      local held = opt:lr_scales()["model.layers.2.mlp.up_proj.weight"]
      local want = r.last_scales["model.layers.2.mlp.up_proj.weight"]
      if granularity == "tensor" then assert.equals(want, held) else assert.same(want:table(), held:table()) end
      for _, name in ipairs(m:param_names()) do
        local g = m:grad(name)
        if g then assert.equals(0, g:abs():max()) end
      end
      os.remove(log); os.remove(extra)
    end)
  end

  it("rejects bad intervals and policies", function()
    local m = adept.model(CFG, {seed = 1, init_std = 0.4})
    local opt = adept.adamw(m, {lr = 1e-3})
    assert.has_error(function() adept.lr.refresher(m, opt, PROBE, {every = 0}) end)
    assert.has_error(function() adept.lr.refresher(m, opt, PROBE, {policy = "nope"}) end)
  end)
end)
