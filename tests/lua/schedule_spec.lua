-- adept.schedule: warmup, cosine, linear, constant, chain, plain functions; argument errors.
local adept = require "adept"

describe("adept.schedule", function()
  local S = adept.schedule

  it("warms up linearly to 1 at the last warmup step, never starting at 0", function()
    local c = S.cosine{warmup = 4, min_ratio = 0.1}
    assert.near(0.25, c(0, 100), 1e-15)
    assert.near(0.75, c(2, 100), 1e-15)
    assert.near(1.0, c(3, 100), 1e-15)
    assert.near(1.0, c(4, 100), 1e-15) -- cosine starts at its top
  end)

  it("decays cosine to min_ratio at total, half way at the midpoint", function()
    local c = S.cosine{warmup = 10, min_ratio = 0.2}
    assert.near(0.2, c(110, 110), 1e-15)
    assert.near(0.2 + 0.8 * 0.5, c(60, 110), 1e-12)
    assert.near(0.2, c(500, 110), 1e-15) -- past the end: the floor
    -- hand value: progress 0.25 -> 0.2 + 0.8 * 0.5 * (1 + cos(pi/4))
    assert.near(0.2 + 0.4 * (1 + math.sqrt(0.5)), c(35, 110), 1e-12)
    local fixed = S.cosine{warmup = 0, min_ratio = 0, total = 10}
    assert.near(0.5, fixed(5, 999), 1e-12) -- its own total wins over the trainer's
  end)

  it("decays linearly and holds constant", function()
    local l = S.linear{warmup = 2, min_ratio = 0}
    assert.near(0.5, l(0, 12), 1e-15)
    assert.near(1.0, l(2, 12), 1e-15)
    assert.near(0.5, l(7, 12), 1e-15)
    assert.near(0.0, l(12, 12), 1e-15)
    local k = S.constant{warmup = 3}
    assert.near(1 / 3, k(0), 1e-15)
    assert.equals(1, k(3))
    assert.equals(1, k(1000))
  end)

  it("chains pieces, each seeing its own step count and length", function()
    local ch = S.chain{{5, S.constant{}}, {15, S.linear{min_ratio = 0}}, {function(s) return 0.01 * (s + 1) end}}
    assert.equals(1, ch(0, 100))
    assert.equals(1, ch(4, 100))
    assert.near(1.0, ch(5, 100), 1e-15)   -- linear piece step 0 of 10
    assert.near(0.5, ch(10, 100), 1e-15)  -- step 5 of 10
    assert.near(0.01, ch(15, 100), 1e-15) -- last piece restarts its count
    assert.near(0.06, ch(20, 100), 1e-15)
  end)

  it("rejects bad options with messages naming them", function()
    assert.has_error(function() S.cosine{warmup = -1} end)
    assert.has_error(function() S.cosine{warmpu = 3} end, nil)
    local ok, err = pcall(S.cosine, {warmpu = 3})
    assert.is_false(ok)
    assert.matches("unknown option 'warmpu'", err, 1, true)
    ok, err = pcall(function() S.cosine{}(5) end)
    assert.is_false(ok)
    assert.matches("no total", err, 1, true)
    ok, err = pcall(S.chain, {{3, S.constant{}}, {2, S.constant{}}})
    assert.is_false(ok)
    assert.matches("piece 2", err, 1, true)
  end)

  it("describes itself", function()
    assert.matches("cosine%(warmup=100", tostring(S.cosine{warmup = 100}))
  end)
end)
