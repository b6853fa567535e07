-- adept.load and m:save: HF round trips from Lua (f32, bf16, shards, expanded layers), llama2.c import,
-- errors raised with the engine's message, and argument errors in the standard form.
local adept = require "adept"
local H = require "spec_helpers"

local CFG, BATCH = H.TINY_CONFIG, H.TINY_BATCH
local function model(extra) return H.tiny_model(extra, 5) end

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  return name .. "_model"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function rm(dir) H.run("rm -rf '" .. dir .. "'") end

describe("adept.load / m:save", function()
  it("round-trips an HF directory: same loss bitwise, same parameter names", function()
    for _, arch in ipairs({"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) do
      local m = model({architectures = {arch}, head_dim = 4})
      local dir = tmpdir()
      assert.equals(m, m:save(dir))
      assert.is_true(exists(dir .. "/config.json") and exists(dir .. "/model.safetensors") and
                     exists(dir .. "/adept.json"))
      local m2 = adept.load(dir)
      assert.same(m:param_names(), m2:param_names())
      assert.equals(m:loss(BATCH), m2:loss(BATCH))
      assert.equals(arch, m2.config.architecture)
      rm(dir)
    end
  end)

  it("saves bf16 on request and then keeps bf16; shards past max_shard_bytes", function()
    local m = model()
    local dir, dir2 = tmpdir(), tmpdir()
    m:save(dir, {dtype = "bf16", max_shard_bytes = 1500})
    assert.is_true(exists(dir .. "/model.safetensors.index.json"))
    assert.is_false(exists(dir .. "/model.safetensors"))
    assert.matches('"torch_dtype":%s*"bfloat16"', read(dir .. "/config.json"))
    local b = adept.load(dir)
    assert.equals("bf16", b.config.dtype)
    assert.are_not.equal(m:loss(BATCH), b:loss(BATCH)) -- rounded to bf16
    b:save(dir2)
    assert.matches('"torch_dtype":%s*"bfloat16"', read(dir2 .. "/config.json"))
    assert.equals(b:loss(BATCH), adept.load(dir2):loss(BATCH))
    rm(dir); rm(dir2)
  end)

  it("keeps the expanded layers and the function across save and load", function()
    local m = model()
    local copies = m:expand({0})
    local dir = tmpdir()
    m:save(dir)
    local m2 = adept.load(dir)
    assert.equals(4, m2:num_layers())
    assert.same(m:expanded_layers(), m2:expanded_layers())
    assert.same(copies, m2:expanded_layers())
    assert.equals(m:loss(BATCH), m2:loss(BATCH))
    assert.matches('"num_hidden_layers":%s*4', read(dir .. "/config.json"))
    rm(dir)
  end)

  it("raises the engine's message, prefixed with the function name", function()
    local dir = tmpdir()
    model():save(dir)
    local f = assert(io.open(dir .. "/config.json", "wb"))
    f:write('{"architectures": ["LlamaForCausalLM"], "vocab_size": 23, "hidden_size": -3}')
    f:close()
    assert.has_error(function() adept.load(dir) end,
      "adept.load: config.json: hidden_size must be a positive integer, got -3")
    rm(dir)
    assert.has_error(function() adept.load(dir) end)
    local ok, err = pcall(adept.load, dir)
    assert.is_false(ok)
    assert.matches("^adept.load: .*No such file", err)
  end)

  it("keeps a sliding window across save and load, and applies it past the window", function()
    local cfg = {architectures = {"MistralForCausalLM"}, model_type = "mistral", vocab_size = 37,
      hidden_size = 16, intermediate_size = 32, num_hidden_layers = 2, num_attention_heads = 4,
      num_key_value_heads = 2, max_position_embeddings = 64, sliding_window = 8}
    local m = adept.model(cfg, {seed = 2})
    local dir = tmpdir()
    m:save(dir)
    assert.equals(8, adept.json.read(dir .. "/config.json").sliding_window)
    local m2 = adept.load(dir)
    local row = {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert.equals(m:loss({row}), m2:loss({row})) -- 8 positions: inside the window
    cfg.sliding_window = nil
    local plain = adept.model(cfg, {seed = 2}) -- the same weights, no window
    local long = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
    assert.equals(plain:loss({row}), m2:loss({row}))
    assert.are_not.equals(plain:loss({long}), m2:loss({long})) -- positions 9.. no longer see the first keys
    rm(dir)
  end)

  it("checks its arguments", function()
    local m = model()
    assert.has_error(function() adept.load() end)
    assert.has_error(function() m:save() end)
    -- a method counts its arguments after self, as Lua's own methods do: the options table is argument #2
    local ok, err = pcall(function() m:save(tmpdir(), {dtype = "i32"}) end)
    assert.is_false(ok)
    assert.matches("^adept%.Model:save: bad argument #2 %(dtype must be f32, bf16 or f16, got 'i32'%)", err)
    ok, err = pcall(function() m:save(tmpdir(), {max_shard_bytes = -1}) end)
    assert.matches("^adept%.Model:save: bad argument #2 %(field 'max_shard_bytes' must be an integer >= 0, got %-1%)", err)
    ok, err = pcall(function() m:save(tmpdir(), "bf16") end)
    assert.matches("^adept%.Model:save: bad argument #2 %(table expected", err)
  end)

  it("imports stories260K from its llama2.c checkpoint", function()
    local bin = H.shared("models/stories260K/stories260K.bin")
    if not bin then
      print("skipping: ../shared/models/stories260K not found")
      return
    end
    local m = adept.load(bin)
    assert.equals(5, m:num_layers())
    assert.equals(512, m.config.vocab_size)
    assert.is_true(m.config.tie_word_embeddings)
    assert.equals(1e-5, m.config.rms_norm_eps)
    local ids = m:generate({1}, {max_tokens = 12})
    assert.equals(12, #ids)
    local dir = tmpdir()
    m:save(dir)
    assert.same(ids, adept.load(dir):generate({1}, {max_tokens = 12}))
    rm(dir)
  end)
end)
