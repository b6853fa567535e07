-- Spec for adept.cpt's pure parts: option layering and token-level replay mixing.
local adept = require "adept"
local cpt = require "adept.cpt"

describe("adept.cpt.options", function()
  it("layers defaults < method < spec < overrides", function()
    local o = cpt.options("llama_pro", {lr = 5e-4, k = 3}, {k = 1})
    assert.are.equal("uniform", o.placement)
    assert.are.equal("copies", o.train)
    assert.are.equal(5e-4, o.lr)
    assert.are.equal(1, o.k)
    assert.are.equal("llama_pro", o.method)
    assert.are.equal(cpt.defaults.steps, o.steps)
  end)
  it("names the methods by the four choices", function()
    assert.are.equal("importance", cpt.METHODS.adept.placement)
    assert.are.equal("decoupled", cpt.METHODS.adept.lr_policy)
    assert.are.equal("one", cpt.METHODS.no_stage2.lr_policy)
    assert.are.equal("least_important", cpt.METHODS.no_stage1.train)
    assert.is_true(cpt.METHODS.replay.replay > 0)
  end)
end)

describe("adept.cpt.replay_source", function()
  -- fake views: domain tokens are 1, general tokens 2; targets mirror inputs
  local function view(v)
    return {next_batch = function(_, bs)
      local rows = {}
      for r = 1, bs do rows[r] = {} for t = 1, 8 do rows[r][t] = v end end
      return {inputs = adept.tensor(rows, "int32"), targets = adept.tensor(rows, "int32")}
    end}
  end
  it("keeps the cumulative general share at round(r * tokens), deterministically", function()
    local fn, stats = cpt.replay_source(view(1), view(2), 0.3, 3)
    local general, total = 0, 0
    for _ = 1, 7 do
      local b = fn()
      for _, row in ipairs(b.inputs:table()) do
        for _, x in ipairs(row) do total = total + 1; if x == 2 then general = general + 1 end end
      end
      assert.are.equal(math.floor(0.3 * total + 0.5), general)
      assert.are.same(b.inputs:table(), b.targets:table())
    end
    assert.are.equal(general, stats.general_tokens)
    assert.are.equal(total - general, stats.domain_tokens)
    local fn2 = cpt.replay_source(view(1), view(2), 0.3, 3)
    local again = fn2()
    local first = cpt.replay_source(view(1), view(2), 0.3, 3)()
    assert.are.same(first.inputs:table(), again.inputs:table())
  end)
end)
