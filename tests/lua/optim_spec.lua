-- adept.adamw bindings: options, LR scales (numbers, row tensors, row arrays), state files, misuse.
local adept = require "adept"

local CFG = {vocab_size = 11, hidden_size = 8, intermediate_size = 12, num_hidden_layers = 2, num_attention_heads = 2}
local BATCH = {{1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1}}

local function tmp() return os.tmpname() .. ".safetensors" end

describe("adept.adamw", function()
  it("takes torch-style options and reports them", function()
    local m = adept.model(CFG)
    local opt = adept.adamw(m, {lr = 3e-4, betas = {0.8, 0.99}, eps = 1e-6, weight_decay = 0})
    local c = opt:state().config
    assert.equals(3e-4, c.lr)
    assert.equals(0.8, c.beta1)
    assert.equals(0.99, c.beta2)
    assert.equals(1e-6, c.eps)
    assert.equals(0, c.weight_decay)
    assert.matches("^adept%.Optimizer%(AdamW, lr=0%.0003, 0 steps%)$", tostring(opt))
    assert.equals(1e-3, opt:lr(1e-3))
    assert.has_error(function() adept.adamw(m, {betas = {0.9}}) end)
    local ok, err = pcall(adept.adamw, m, {betas = {1.0, 0.9}})
    assert.is_false(ok)
    assert.matches("beta1 must be in %[0, 1%)", err)
    ok, err = pcall(adept.adamw, {}, {})
    assert.is_false(ok)
    assert.matches("adept.Model expected", err, 1, true)
  end)

  it("updates only trainable tensors and keeps state only for them", function()
    local m = adept.model(CFG, {seed = 4})
    m:freeze("^model%.layers%.0%.")
    local opt = adept.adamw(m, {lr = 1e-2})
    m:loss_and_grad(BATCH)
    opt:step()
    local st = opt:state()
    assert.equals(1, st.steps)
    assert.is_nil(st.slots["model.layers.0.self_attn.q_proj.weight"])
    assert.equals(1, st.slots["model.layers.1.self_attn.q_proj.weight"].step)
    -- two moment slabs laid out like the gradient slab (rows 64-byte aligned)
    assert.equals(2 * m:memory().grads, st.bytes)
    assert.is_true(st.bytes >= 2 * 4 * m:trainable_params())
    local before = m:loss(BATCH)
    m:zero_grad()
    m:loss_and_grad(BATCH)
    opt:step(0) -- a zero schedule factor: no change
    assert.equals(before, m:loss(BATCH))
  end)

  it("sets LR scales from numbers, tensors and arrays, replacing the previous ones", function()
    local m = adept.model(CFG)
    local opt = adept.adamw(m)
    local rows = {}
    for i = 1, CFG.vocab_size do rows[i] = i / 10 end
    opt:set_lr_scales({["model.norm.weight"] = 0.5, ["lm_head.weight"] = rows})
    local got = opt:lr_scales()
    assert.equals(0.5, got["model.norm.weight"])
    assert.same({CFG.vocab_size}, got["lm_head.weight"]:shape())
    opt:set_lr_scales({["model.embed_tokens.weight"] = 2})
    got = opt:lr_scales()
    assert.is_nil(got["model.norm.weight"]) -- replaced, not merged
    assert.equals(2, got["model.embed_tokens.weight"])
    local ok, err = pcall(opt.set_lr_scales, opt, {["lm_head.weight"] = {1, 2}})
    assert.is_false(ok)
    assert.matches("array of 11 numbers", err, 1, true)
    ok, err = pcall(opt.set_lr_scales, opt, {["model.norm.weight"] = -1})
    assert.is_false(ok)
    assert.matches("finite number >= 0", err, 1, true)
    assert.equals(2, opt:lr_scales()["model.embed_tokens.weight"]) -- a failed call changes nothing
    ok, err = pcall(opt.set_lr_scales, opt, {["model.nrom.weight"] = 1})
    assert.is_false(ok)
    assert.matches("no parameter named 'model.nrom.weight'", err, 1, true)
  end)

  it("saves and loads its state exactly", function()
    local m = adept.model(CFG, {seed = 2})
    local opt = adept.adamw(m, {lr = 1e-2})
    local rows = {}
    for i = 1, CFG.vocab_size do rows[i] = 1 + i / 100 end
    opt:set_lr_scales({["model.norm.weight"] = 0.25, ["lm_head.weight"] = rows})
    for _ = 1, 3 do m:zero_grad(); m:loss_and_grad(BATCH); opt:step() end
    local path = tmp()
    opt:save_state(path, {note = "hello"})
    local o2 = adept.adamw(m, {lr = 1e-2})
    local meta = o2:load_state(path)
    assert.equals("hello", meta.note)
    assert.is_string(meta.optimizer)
    assert.same(opt:state(), o2:state())
    assert.equals(0.25, o2:lr_scales()["model.norm.weight"])
    -- everything (moments, row multipliers, step counts) round-trips: the two files are byte-identical
    local p1, p2 = tmp(), tmp()
    opt:save_state(p1)
    o2:save_state(p2)
    local function slurp(p) local f = io.open(p, "rb"); local x = f:read("a"); f:close(); return x end
    assert.equals(slurp(p1), slurp(p2))
    os.remove(p1); os.remove(p2)
    assert.has_error(function() adept.adamw(m):load_state(path .. ".missing") end)
    o2:reset_state()
    for _, slot in pairs(o2:state().slots) do assert.equals(0, slot.step) end
    os.remove(path)
    assert.has_error(function() opt:save_state(path, {optimizer = "x"}) end)
  end)

  it("refuses a corrupt state file and stays as it was", function()
    local m = adept.model(CFG, {seed = 2})
    local opt = adept.adamw(m)
    m:loss_and_grad(BATCH)
    opt:step()
    opt:set_lr_scales({["model.norm.weight"] = 0.5})
    local before = opt:state()
    local bad = {
      '{"steps":1e300,"slots":{},"scales":{}}',
      '{"steps":-1,"slots":{},"scales":{}}',
      '{"steps":2,"slots":{"model.norm.weight":1},"scales":{}}',           -- moments missing
      '{"steps":2,"slots":{},"scales":{"model.norm.weight":-1}}',          -- row scales missing
      '{"steps":2,"slots":{},"scales":{"model.norm.weight":"x"}}',
      'not json',
    }
    for _, text in ipairs(bad) do
      local path = tmp()
      adept.save_tensors(path, {}, {optimizer = text})
      local ok, err = pcall(opt.load_state, opt, path)
      assert.is_false(ok, text)
      assert.matches("load_state: ", err, 1, true)
      os.remove(path)
    end
    local path = tmp()
    adept.save_tensors(path, {}, {other = "x"})
    local ok, err = pcall(opt.load_state, opt, path)
    assert.is_false(ok)
    assert.matches("not a trainer_state file", err, 1, true)
    os.remove(path)
    assert.same(before, opt:state())
    assert.equals(0.5, opt:lr_scales()["model.norm.weight"])
  end)

  it("fails clearly when its model was freed", function()
    local m = adept.model(CFG)
    local opt = adept.adamw(m)
    m:free()
    local ok, err = pcall(opt.step, opt)
    assert.is_false(ok)
    assert.matches("model was freed", err, 1, true)
    opt:free()
    ok, err = pcall(opt.step, opt)
    assert.matches("optimizer was freed", err, 1, true)
  end)
end)
