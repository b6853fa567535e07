-- The binding convention (docs/bindings.md): every error a binding raises reads "adept.<function>: ..."
-- (methods "adept.<Type>:<method>: ..."), failures raise instead of returning nil, message, every userdata
-- type has one metatable layout and one tostring form, and Lua values are range-checked into C types.
local adept = require "adept"
local helpers = require "spec_helpers"

local function tmpname(suffix)
  local n = os.tmpname()
  os.remove(n)
  return n .. (suffix or "")
end

-- A token shard of 3 documents (ids < 23, the tiny model's vocabulary) for dataset handles.
local function shard()
  local p = tmpname(".u16")
  local f = assert(io.open(p, "wb"))
  for _, id in ipairs({1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0}) do f:write(string.pack("<I2", id)) end
  f:close()
  return p
end

local function err_of(fn)
  local results = table.pack(pcall(fn))
  return results[1], results[2], results
end

describe("binding convention", function()
  local m = helpers.tiny_model()
  local opt = adept.adamw(m, {lr = 1e-3})
  local t = adept.zeros({2, 3})
  local ds = adept.dataset{path = shard(), format = "tokens", eos = 0, seq_len = 4, holdout = 0, cache = false}
  local tokpath = helpers.shared("models/stories260K/tok512.bin")
  local tok = tokpath and adept.tokenizer(tokpath)

  -- {expected prefix, call}: each call is wrong somehow and must raise an error starting with the prefix.
  local cases = {
    {"adept.tensor: bad argument #1 (", function() adept.tensor("x") end},
    {"adept.zeros: bad argument #2 (", function() adept.zeros({2}, 5) end},
    {"adept.randn: bad argument #2 (", function() adept.randn({2}, "x") end},
    {"adept.Tensor:get: bad argument #1 (", function() t:get("x", 1) end},
    {"adept.Tensor:set: bad argument #1 (", function() t:set({}, 1, 1) end},
    {"adept.Tensor:topk: bad argument #1 (", function() t:topk(99) end},
    {"adept.Tensor:to: bad argument #1 (", function() t:to("nope") end},
    {"adept.Tensor:abs: bad self (", function() t.abs(3) end},
    {"adept.Tensor:__add: shapes [2, 3] and [3] differ", function() return t + adept.zeros({3}) end},
    {"adept.model: ", function() adept.model({}) end},
    {"adept.load: ", function() adept.load(tmpname("/nothing")) end},
    {"adept.load: bad argument #1 (", function() adept.load() end},
    {"adept.Model:param: no parameter named 'x'", function() m:param("x") end},
    {"adept.Model:grad: bad argument #1 (", function() m:grad() end},
    {"adept.Model:expand: bad argument #1 (", function() m:expand("x") end},
    {"adept.Model:freeze: malformed pattern", function() m:freeze("[") end},
    {"adept.Model:unfreeze: bad argument #1 (", function() m:unfreeze() end},
    {"adept.Model:loss: bad argument #1 (", function() m:loss("x") end},
    {"adept.Model:loss_and_grad: ", function() m:loss_and_grad({{1}}) end},
    {"adept.Model:logits: ", function() m:logits({1.5}) end},
    {"adept.Model:generate: bad argument #2 (field 'top_k'", function() m:generate({1}, {top_k = -1}) end},
    {"adept.Model:hidden_states: ", function() m:hidden_states("x") end},
    {"adept.Model:with_layers_skipped: bad argument #1 (", function() m:with_layers_skipped({99}, print) end},
    {"adept.Model:save: bad argument #1 (", function() m:save() end},
    {"adept.Model:mask_out: ", function() m:mask_out("x") end},
    {"adept.Model:block_influence: ", function() m:block_influence("x") end},
    {"adept.Model:set_param: ", function() m:set_param("model.norm.weight", adept.zeros({3})) end},
    {"adept.adamw: bad argument #1 (", function() adept.adamw() end},
    {"adept.adamw: bad argument #2 (field 'betas'", function() adept.adamw(m, {betas = 1}) end},
    {"adept.Optimizer:step: bad argument #1 (", function() opt:step("x") end},
    {"adept.Optimizer:clip_grad_norm: bad argument #1 (", function() opt:clip_grad_norm(0) end},
    {"adept.Optimizer:set_lr_scales: no parameter named 'x'", function() opt:set_lr_scales({x = 1}) end},
    {"adept.Optimizer:lr: bad argument #1 (", function() opt:lr("x") end},
    {"adept.dataset: bad argument #1 (", function() adept.dataset() end},
    {"adept.dataset: bad argument #1 (field 'seq_len'", function() adept.dataset{path = "x", seq_len = 0} end},
    {"adept.Dataset:take: bad argument #1 (", function() ds:take(-1) end},
    {"adept.Dataset:document: bad argument #1 (", function() ds:document(0) end},
    {"adept.Dataset:set_cursor: bad argument #1 (", function() ds:set_cursor(3) end},
    {"adept.Dataset:batches: bad argument #1 (", function() ds:batches(0) end},
    {"adept.tokenizer: ", function() adept.tokenizer(tmpname("/nothing.json")) end},
    {"adept.save_tensors: bad argument #2 (", function() adept.save_tensors(tmpname(), 3) end},
    {"adept.load_tensors: ", function() adept.load_tensors(tmpname()) end},
    {"adept.count_targets: ", function() adept.count_targets("x") end},
    {"adept.forward_backward: bad argument #3 (grad_scale", function() adept.forward_backward(m, helpers.TINY_BATCH, 1e39) end},
    {"adept.nll: ", function() adept.nll(m, "x") end},
    {"adept.memory: bad argument #1 (", function() adept.memory() end},
    {"adept.sgemm_peak: bad argument #1 (matrix size", function() adept.sgemm_peak(4) end},
    {"adept.threads: bad argument #1 (", function() adept.threads(-1) end},
    {"adept.log: bad argument #1 (", function() adept.log("loud", "x") end},
    {"adept.progress: bad argument #2 (", function() adept.progress("x", -1) end},
    {"adept.sleep: bad argument #1 (", function() adept.sleep(0 / 0) end},
    {"adept.fs.list: ", function() adept.fs.list(tmpname("/absent")) end},
    {"adept.fs.mkdir_p: bad argument #1 (", function() adept.fs.mkdir_p() end},
    {"adept.fs.rename: ", function() adept.fs.rename(tmpname(), tmpname()) end},
    {"adept.json.decode: invalid JSON", function() adept.json.decode("{") end},
    {"adept.json.encode: cannot encode a function", function() adept.json.encode(print) end},
    {"adept.json.read: ", function() adept.json.read(tmpname()) end},
    {"adept.json.write: cannot encode a function", function() adept.json.write(tmpname(), {print}) end},
    {"adept.chart.line: bad argument #1 (field 'width'", function()
      adept.chart.line{path = tmpname(".svg"), width = 1, series = {{y = {1}}}} end},
    {"adept.chart.bars: ", function() adept.chart.bars{path = tmpname(".svg")} end},
    {"adept._eval.target_logprobs: ", function() adept._eval.target_logprobs(t, "x") end},
  }
  if tok then
    cases[#cases + 1] = {"adept.Tokenizer:encode: bad argument #1 (", function() tok:encode({}) end}
    cases[#cases + 1] = {"adept.Tokenizer:decode: bad argument #1 (", function() tok:decode({1.5}) end}
    cases[#cases + 1] = {"adept.Tokenizer:id_to_token: bad argument #1 (", function() tok:id_to_token("x") end}
  end

  for i, case in ipairs(cases) do
    it(("case %d raises %q"):format(i, case[1]), function()
      local ok, err, results = err_of(case[2])
      assert.is_false(ok, "returned instead of raising: " .. tostring(results[2]) .. ", " .. tostring(results[3]))
      assert.equals("string", type(err))
      assert.equals(case[1], err:sub(1, #case[1]))
    end)
  end

  it("names freed handles in the method's name", function()
    local x = adept.zeros({1}); x:free()
    assert.has_error(function() x:numel() end, "adept.Tensor:numel: tensor was freed")
    local m2 = helpers.tiny_model(); m2:free()
    assert.has_error(function() m2:num_layers() end, "adept.Model:num_layers: model was freed")
    local o2 = adept.adamw(helpers.tiny_model()); o2:free()
    assert.has_error(function() o2:lr() end, "adept.Optimizer:lr: optimizer was freed")
  end)

  it("lets the error of a callback through unchanged", function()
    local ok, err = pcall(m.with_layers_skipped, m, {0}, function() error("mine", 0) end)
    assert.is_false(ok)
    assert.equals("mine", err)
    local obj = {}
    ok, err = pcall(m.with_layers_skipped, m, {0}, function() error(obj) end)
    assert.equals(obj, err)
  end)

  it("raises instead of returning nil, message for unreadable files and directories", function()
    assert.is_false((pcall(adept.json.read, tmpname())))
    assert.is_false((pcall(adept.fs.list, tmpname())))
  end)
end)

describe("userdata layout and tostring", function()
  local tokpath = helpers.shared("models/stories260K/tok512.bin")
  local function handles()
    local m = helpers.tiny_model()
    local list = {
      {"adept.Tensor", adept.tensor({{1, 2, 3}, {4, 5, 6}}), "^adept%.Tensor%(f32, %[2, 3%], values=%[1, 2, 3, 4, 5, 6%]%)$"},
      {"adept.Model", m, "^adept%.Model%(LlamaForCausalLM, 3 layers, 6%.6K params%)$"},
      {"adept.Optimizer", adept.adamw(m, {lr = 3e-4}), "^adept%.Optimizer%(AdamW, lr=0%.0003, 0 steps%)$"},
      {"adept.Dataset", adept.dataset{path = shard(), format = "tokens", eos = 0, seq_len = 4, holdout = 0, cache = false},
        "^adept%.Dataset%(all, 3 documents, 12 tokens, 3 windows of 4%)$"},
      {"adept.Progress", adept.progress("probe", 3), "^adept%.Progress%(probe%)$"},
      {"adept.RunLock", adept.fs.lock(tmpname() .. ".lock"), "^adept%.RunLock%(/.+%.lock%)$"},
    }
    if tokpath then list[#list + 1] = {"adept.Tokenizer", adept.tokenizer(tokpath), "^adept%.Tokenizer%(vocab 512%)$"} end
    return list
  end

  it("has one metatable layout per type", function()
    for _, h in ipairs(handles()) do
      local name, obj = h[1], h[2]
      local mt = getmetatable(obj)
      assert.equals(name, mt.__name)
      assert.equals(mt, debug.getregistry()[name])
      assert.equals("table", type(mt.methods))
      if name == "adept.Model" then assert.equals("function", type(mt.__index)) -- serves m.config
      else assert.equals(mt.methods, mt.__index) end
      for _, k in ipairs({"__gc", "__close", "__tostring"}) do assert.equals("function", type(mt[k]), name .. " " .. k) end
      assert.equals("function", type(mt.methods.free))
    end
  end)

  it("prints adept.Type(facts) and adept.Type(freed), and frees idempotently", function()
    for _, h in ipairs(handles()) do
      local name, obj, pattern = h[1], h[2], h[3]
      assert.matches(pattern, tostring(obj))
      obj:free()
      obj:free()
      getmetatable(obj).__gc(obj)
      assert.equals(name .. "(freed)", tostring(obj))
    end
  end)

  it("closes <close> handles of every type", function()
    local seen
    do
      local x <close> = adept.zeros({1})
      seen = x
    end
    assert.equals("adept.Tensor(freed)", tostring(seen))
  end)

  it("prints the architecture of a model", function()
    local cfg = {architectures = {"Qwen2ForCausalLM"}}
    assert.matches("^adept%.Model%(Qwen2ForCausalLM, 3 layers, ", tostring(helpers.tiny_model(cfg)))
  end)
end)

describe("conversion of Lua values", function()
  local m = helpers.tiny_model()

  it("range-checks layer indices instead of truncating them to 32 bits", function()
    local ok, err = pcall(m.expand, m, {4294967297})
    assert.is_false(ok)
    assert.matches("^adept%.Model:expand: layer index 1 must be an integer in %[0, 2147483647%], got 4294967297", err)
    ok, err = pcall(m.expand, m, {math.maxinteger})
    assert.is_false(ok)
    assert.matches("got " .. math.maxinteger, err, 1, true)
    assert.equals(3, m:num_layers()) -- nothing was duplicated
  end)

  it("range-checks generation options", function()
    local ok, err = pcall(m.generate, m, {1, 2}, {max_tokens = 4294967297})
    assert.is_false(ok)
    assert.matches("^adept%.Model:generate: bad argument #2 %(field 'max_tokens' must be an integer in %[0, 2147483647%], "
      .. "got 4294967297%)$", err)
    ok, err = pcall(m.generate, m, {1}, {temperature = 1e39})
    assert.matches("field 'temperature' must be a finite number within the float32 range", err, 1, true)
    ok, err = pcall(m.generate, m, {1}, {stop = 2 ^ 40 // 1})
    assert.matches("field 'stop'", err, 1, true)
  end)

  it("refuses optimizer values beyond the float32 range, naming the option", function()
    local opt = adept.adamw(m)
    local ok, err = pcall(opt.set_lr_scales, opt, {["model.norm.weight"] = 1e300})
    assert.is_false(ok)
    assert.matches("^adept%.Optimizer:set_lr_scales: scale of 'model%.norm%.weight' must be a finite number within the "
      .. "float32 range", err)
    ok, err = pcall(opt.set_lr_scales, opt, {["model.norm.weight"] = {1, 1e300}})
    assert.is_false(ok)
    ok, err = pcall(adept.adamw, m, {lr = 1e39})
    assert.is_false(ok)
    assert.matches("^adept%.adamw: bad argument #2 %(field 'lr' must be a finite number within the float32 range", err)
    for _, o in ipairs({{eps = 0 / 0}, {weight_decay = math.huge}, {betas = {0.9, 1e40}}}) do
      assert.is_false((pcall(adept.adamw, m, o)))
    end
    assert.is_false((pcall(opt.lr, opt, 1e39)))
    assert.is_false((pcall(opt.step, opt, 1e39)))
  end)

  it("keeps i64 tensor elements exact to 2^63", function()
    local big = 9007199254740993 -- 2^53 + 1: not a double
    local t = adept.tensor({big}, "i64")
    assert.equals(big, t:get(1))
    assert.equals("integer", math.type(t:get(1)))
    t:set(math.maxinteger, 1)
    assert.equals(math.maxinteger, t:get(1))
    t:set(math.mininteger, 1)
    assert.equals(math.mininteger, t:table()[1])
    assert.matches(tostring(math.mininteger), tostring(t), 1, true)
  end)

  it("refuses values an element's dtype cannot hold, instead of saturating or overflowing", function()
    assert.is_false((pcall(adept.tensor, {3000000000}, "i32")))
    assert.is_false((pcall(adept.tensor, {-1}, "u8")))
    assert.is_false((pcall(adept.tensor, {1e39})))
    assert.is_false((pcall(adept.tensor, {1e5}, "f16")))
    assert.is_false((pcall(adept.tensor, {2 ^ 63}, "i64")))
    local t = adept.zeros({1}, "i32")
    local ok, err = pcall(t.set, t, 2 ^ 31, 1)
    assert.is_false(ok)
    assert.matches("^adept%.Tensor:set: bad argument #1 %(", err)
    assert.equals(0, t:get(1)) -- unchanged
    -- explicit infinities and NaN are values, not overflows
    local f = adept.tensor({math.huge, 0 / 0})
    assert.equals(math.huge, f:get(1))
    assert.is_true(f:get(2) ~= f:get(2))
    -- fractions truncate toward zero into integer dtypes, as :to does
    assert.equals(-2, adept.tensor({-2.7}, "i32"):get(1))
  end)

  it("range-checks integer options of datasets, charts and utilities", function()
    assert.is_false((pcall(adept.dataset, {path = shard(), format = "tokens", seq_len = 2 ^ 40 // 1})))
    assert.is_false((pcall(adept.dataset, {path = shard(), format = "tokens", eos = 2 ^ 40 // 1})))
    assert.is_false((pcall(adept.threads, 2 ^ 40 // 1)))
    assert.is_false((pcall(adept.chart.line, {path = tmpname(".svg"), height = 2 ^ 33 // 1, series = {{y = {1}}}})))
  end)
end)
