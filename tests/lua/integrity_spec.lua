-- Hostile inputs through the Lua API (issue 16): repeated JSON keys, special files given as inputs, one config
-- parser for adept.model{} and config.json (issue 10), and a batch with no target tokens.
local adept = require "adept"
local H = require "spec_helpers"

local function mkdir(path) assert(os.execute("mkdir -p '" .. path .. "'")) end
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Runs a snippet in the adeptlua host under timeout(1): a blocked read fails the spec instead of stalling it.
local function run_snippet(code)
  local file = H.tmpfile(code, ".lua")
  local out, ok = H.run("timeout 20 " .. H.adeptlua() .. " " .. file)
  os.remove(file)
  return out, ok
end

describe("JSON with a repeated key", function()
  it("is refused by adept.json.decode, naming the key and where it is", function()
    local ok, err = pcall(adept.json.decode, '{"steps": 5, "opts": {"lr": 1, "lr": 2}}')
    assert.is_false(ok)
    assert.matches('adept.json.decode: duplicate key "lr" in opts', err, 1, true)
    assert.same({a = 1, b = {1, 2}}, adept.json.decode('{"a": 1, "b": [1, 2]}'))
  end)

  it("is refused in config.json, naming the key and the file", function()
    local dir = os.tmpname() .. "_dupcfg"
    mkdir(dir)
    local m = H.tiny_model()
    m:save(dir)
    local f = assert(io.open(dir .. "/config.json", "rb"))
    local text = f:read("a")
    f:close()
    -- Python's json would read 3 layers, cJSON the first value: neither may win silently
    write(dir .. "/config.json", (text:gsub("{", '{\n  "num_hidden_layers": 5,', 1)))
    local ok, err = pcall(adept.load, dir)
    assert.is_false(ok)
    assert.matches('config.json: duplicate key "num_hidden_layers" in the top-level object', err, 1, true)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("special files given as inputs", function()
  it("fail at once instead of blocking", function()
    local dir = os.tmpname() .. "_fifo"
    mkdir(dir)
    assert(os.execute("mkfifo '" .. dir .. "/config.json' '" .. dir .. "/corpus.txt' '" .. dir .. "/x.json'"))
    local out, ok = run_snippet(([[
      local adept = require "adept"
      local function try(f, ...) local ok, err = pcall(f, ...); print(ok, err) end
      try(adept.load, %q)
      try(adept.dataset, {path = %q, format = "tokens", seq_len = 4})
      try(adept.json.read, %q)
      try(adept.tokenizer, %q)
    ]]):format(dir, dir .. "/corpus.txt", dir .. "/x.json", dir .. "/x.json"))
    assert.is_true(ok, out)
    assert.matches("config.json: " .. dir .. "/config.json is a FIFO, not a regular file", out, 1, true)
    assert.matches(dir .. "/corpus.txt is a FIFO, not a regular file or directory", out, 1, true)
    assert.matches("false\tadept.json.read: " .. dir .. "/x.json is a FIFO, not a regular file", out, 1, true)
    assert.matches("tokenizer: " .. dir .. "/x.json is a FIFO", out, 1, true)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("adept.model{} and config.json", function()
  -- issue 10: the table is read by the config.json parser, so both give the same model
  local base = {vocab_size = 23, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 2,
                num_attention_heads = 4, num_key_value_heads = 2}
  local function with(extra)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(extra) do t[k] = v end
    return t
  end

  it("refuses attention_bias on Llama as config.json does", function()
    local ok, err = pcall(adept.model, with({attention_bias = true}))
    assert.is_false(ok)
    assert.matches("adept.model: config: attention_bias=true is not supported for LlamaForCausalLM", err, 1, true)
  end)

  it("defaults Qwen3's head_dim to 128 as Qwen3Config (and config.json) do", function()
    local m = adept.model(with({architectures = {"Qwen3ForCausalLM"}}))
    assert.equals(128, m.config.head_dim)
    assert.same({4 * 128, 16}, m:param("model.layers.0.self_attn.q_proj.weight"):shape())
    local dir = os.tmpname() .. "_qwen3"
    m:save(dir)
    local again = adept.load(dir)
    assert.equals(128, again.config.head_dim)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("states the layer limit", function()
    local ok, err = pcall(adept.model, with({num_hidden_layers = 1000000000}))
    assert.is_false(ok)
    assert.matches("num_hidden_layers must be a positive integer of at most 4096", err, 1, true)
  end)

  it("still builds a Llama when no family is named", function()
    local m = adept.model(base)
    assert.matches("LlamaForCausalLM", tostring(m), 1, true)
  end)
end)

describe("a batch whose targets are all -1", function()
  it("is refused by loss_and_grad with 'no target tokens'", function()
    local m = H.tiny_model()
    local ok, err = pcall(m.loss_and_grad, m, {inputs = {{1, 2, 3}}, targets = {{-1, -1, -1}}})
    assert.is_false(ok)
    assert.matches("loss_and_grad: no target tokens", err, 1, true)
  end)
end)
