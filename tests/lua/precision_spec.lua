-- precision "f32" | "bf16" (issue 12, docs/model.md "Precision: bf16 products of fp32 weights"): the options of
-- adept.load / adept.model / adept.cpt, m:set_precision and m:precision, the cpu's default, the errors, and what
-- bf16 does to a model on the cpu (the products change, the masters stay fp32, switching back is exact). The
-- numerics against float64 are tests/parity/test_bf16_precision.py; the device side is tests/device/device_spec.lua.
local adept = require "adept"
local H = require "spec_helpers"

local CFG = H.TINY_CONFIG
local TRAIN = H.TINY_BATCH
local values, same = H.values, H.same
local function tmpdir() return H.tmpdir("_precision") end

describe("precision", function()
  it("is f32 by default on the cpu, for adept.model and adept.load", function()
    local m = adept.model(CFG, {seed = 1, init_std = 0.2})
    assert.equals("f32", m:precision())
    local dir = tmpdir()
    m:save(dir)
    assert.equals("f32", adept.load(dir):precision())
    assert.equals("bf16", adept.load(dir, {precision = "bf16"}):precision())
    H.run("rm -rf '" .. dir .. "'")
  end)

  it("follows adept.default_precision (adeptlua --precision) when no option names one", function()
    local saved = adept.default_precision
    adept.default_precision = "bf16"
    local ok, m = pcall(adept.model, CFG, {seed = 1})
    local explicit = ok and adept.model(CFG, {seed = 1, precision = "f32"})
    adept.default_precision = "fp8"
    local bad_ok, err = pcall(adept.model, CFG, {seed = 1})
    adept.default_precision = saved
    assert.is_true(ok, tostring(m))
    assert.equals("bf16", m:precision())
    assert.equals("f32", explicit:precision())
    assert.is_false(bad_ok)
    assert.matches("adept.model: adept.default_precision: ", err, 1, true)
    local out, run_ok = H.run(H.adeptlua() .. " --precision bf16 -e 'io.write(adept.default_precision, \" \", " ..
      "adept.model({vocab_size = 8, hidden_size = 8, intermediate_size = 16, num_hidden_layers = 1, " ..
      "num_attention_heads = 2}):precision())'")
    assert.is_true(run_ok, out)
    assert.matches("bf16 bf16", out, 1, true)
    local usage, usage_ok, code = H.run(H.adeptlua() .. " --precision half -e ''")
    assert.is_false(usage_ok)
    assert.equals(2, code)
    assert.matches("--precision takes f32 or bf16, got 'half'", usage, 1, true)
  end)

  it("bf16 changes the products, keeps fp32 masters and gradients; f32 again is exactly f32", function()
    local m = H.tiny_model(nil, 2)
    local l32 = m:loss_and_grad(TRAIN)
    local g32 = values(m:grad("model.layers.0.mlp.down_proj.weight"))
    m:zero_grad()
    m:set_precision("bf16")
    assert.equals("bf16", m:precision())
    local l16 = m:loss_and_grad(TRAIN)
    local g16 = values(m:grad("model.layers.0.mlp.down_proj.weight"))
    assert.are_not.equal(l32, l16)
    assert.is_true(math.abs(l16 - l32) / l32 < 1e-2)
    assert.is_false(same(g16, g32))
    for _, p in ipairs(m:params()) do assert.equals("f32", p.dtype) end
    -- an AdamW step updates the fp32 masters (the values are not bf16-representable afterwards)
    local opt = adept.adamw(m, {lr = 1e-2})
    opt:step()
    local w = values(m:param("model.layers.0.mlp.down_proj.weight"))
    local off_grid = 0
    for _, v in ipairs(w) do
      local t = adept.tensor({v}):to("bf16"):to("f32"):table()[1]
      if t ~= v then off_grid = off_grid + 1 end
    end
    assert.is_true(off_grid > #w // 2)
    -- back to f32: the same loss as a fresh f32 model with these weights
    m:zero_grad()
    m:set_precision("f32")
    local dir = tmpdir()
    m:save(dir)
    assert.equals(adept.load(dir):loss(TRAIN), m:loss(TRAIN))
    H.run("rm -rf '" .. dir .. "'")
  end)

  it("bf16 through frozen bf16 rows: those keep their own products and stay bf16", function()
    local dir = tmpdir()
    adept.model(CFG, {seed = 3, init_std = 0.2}):save(dir, {dtype = "bf16"})
    local m = adept.load(dir, {precision = "bf16"})
    m:freeze("all")
    m:unfreeze("^model%.layers%.1%.")
    local loss = m:loss_and_grad(TRAIN)
    assert.is_true(loss == loss and loss > 0)
    for _, p in ipairs(m:params()) do
      if p.name:find("^model%.layers%.0%..*proj") then assert.equals("bf16", p.dtype) end
      if p.name:find("^model%.layers%.1%..*proj") then assert.equals("f32", p.dtype) end
    end
    H.run("rm -rf '" .. dir .. "'")
  end)

  it("refuses an unknown precision, naming the option and the values", function()
    local ok, err = pcall(adept.model, CFG, {precision = "fp16"})
    assert.is_false(ok)
    assert.matches("adept.model: option 'precision': unknown precision 'fp16' %(expected \"f32\" or \"bf16\"%)", err)
    ok, err = pcall(adept.load, "/nonexistent", {precision = "BF16"})
    assert.is_false(ok)
    assert.matches("adept.load: option 'precision': unknown precision 'BF16'", err)
    ok, err = pcall(adept.load, "/nonexistent", {precison = "bf16"})
    assert.is_false(ok)
    assert.matches("did you mean 'precision'", err)
    local m = adept.model(CFG, {seed = 1})
    ok, err = pcall(m.set_precision, m, "half")
    assert.is_false(ok)
    assert.matches("unknown precision 'half'", err)
    assert.equals("f32", m:precision())
  end)

  it("is an option of adept.cpt with both values and no default", function()
    local cpt = require "adept.cpt"
    local found
    for _, d in ipairs(cpt.declarations()) do if d.name == "precision" then found = d end end
    assert.is_not_nil(found)
    assert.same({"f32", "bf16"}, found.choices)
    assert.is_nil(found.default)
  end)
end)
