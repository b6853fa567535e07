-- Instruction datasets (adept.dataset{format = "instructions"}): rows with targets only on the response, the
-- drop/truncate policy, option and item errors; mixed probes (adept.probe): mix = 1 and mix = 0 are exactly the
-- text-only and instruction-only probes for every importance metric and for units, a mixed mask_out is the
-- increase of the mixed loss, mixed gradient metrics use the gradient of the mixed loss.
local adept = require "adept"

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p '" .. tmp .. "'"))
local function spit(name, s)
  local f = assert(io.open(tmp .. "/" .. name, "wb"))
  f:write(s)
  f:close()
  return tmp .. "/" .. name
end

-- a llama2.c tokenizer.bin: <unk>, <s> (BOS 1), </s> (EOS 2) and the 256 byte tokens (byte c -> id c + 3)
local function byte_tokenizer()
  local parts = {string.pack("<i4", 6)}
  for i = 0, 258 do
    local s = i == 0 and "<unk>" or i == 1 and "\n<s>\n" or i == 2 and "\n</s>\n" or string.format("<0x%02X>", i - 3)
    parts[#parts + 1] = string.pack("<fi4", 0, #s) .. s
  end
  return spit("tok259.bin", table.concat(parts))
end

local function ids(s)
  local out = {}
  for i = 1, #s do out[i] = s:byte(i) + 3 end
  return out
end

describe("adept.dataset{format = \"instructions\"}", function()
  local tok = byte_tokenizer()

  it("gives one row per item with targets only on the response and its EOS", function()
    local items = spit("items.jsonl", table.concat({
      '{"instruction": "Hi", "output": "yo"}',
      '{"prompt": "' .. string.rep("p", 60) .. '", "completion": "q"}', -- prompt 61 tokens > 48: dropped
      '{"prompt": "ab", "completion": "' .. string.rep("z", 60) .. '"}', -- 3 + 60 + 1 > 49: truncated
    }, "\n") .. "\n")
    local ds = adept.dataset{format = "instructions", path = items, tokenizer = tok, seq_len = 48}
    assert.are.equal(2, ds:num_rows())
    assert.are.equal(1, ds:dropped())
    assert.are.equal(1, ds:truncated())
    local prompt = "### Instruction:\nHi\n\n### Response:\n"
    local b = ds:take(1, 2)[1]
    local x, y = b.inputs:table(), b.targets:table()
    local want_x, want_y = {1}, {}
    for _, v in ipairs(ids(prompt)) do want_x[#want_x + 1] = v end
    for i = 1, #prompt do want_y[i] = -1 end -- BOS + prompt: its last token predicts the first response token
    local response = ids("yo")
    want_x[#want_x + 1], want_x[#want_x + 2] = response[1], response[2]
    want_y[#prompt + 1], want_y[#prompt + 2], want_y[#prompt + 3] = response[1], response[2], 2
    assert.are.equal(48, #x[1])
    for t = 1, 48 do
      assert.are.equal(want_x[t] or 2, x[1][t]) -- padded with EOS
      assert.are.equal(want_y[t] or -1, y[1][t]) -- padding targets -1
    end
    -- the truncated row: BOS a b, then 46 of the 60 response tokens (targets from position 3 on), no EOS
    for t = 1, 48 do assert.are.equal(t >= 3 and ids("z")[1] or -1, y[2][t]) end
    assert.are.equal(3 + 46, ds:response_tokens())
    -- next_batch wraps around the rows
    local nb = ds:next_batch(3)
    assert.are.same(x[1], nb.inputs:table()[3])
  end)

  it("refuses unknown options, other templates and malformed items with file and line", function()
    local items = spit("ok.jsonl", '{"prompt": "a", "completion": "b"}\n')
    local ok, err = pcall(adept.dataset, {format = "instructions", path = items, tokenizer = tok, feild = "x"})
    assert.is_false(ok)
    assert.matches("unknown option 'feild'", err)
    ok, err = pcall(adept.dataset, {format = "instructions", path = items, tokenizer = tok, template = "chatml"})
    assert.is_false(ok)
    assert.matches('template', err)
    local bad = spit("bad.jsonl", '{"prompt": "a", "completion": "b"}\n{"instruction": "x"}\n')
    ok, err = pcall(adept.dataset, {format = "instructions", path = bad, tokenizer = tok})
    assert.is_false(ok)
    assert.matches("bad.jsonl:2: missing 'output'", err, 1, true)
    ok, err = pcall(adept.dataset, {format = "instructions", path = items})
    assert.is_false(ok)
    assert.matches("tokenizer", err)
  end)

  it("renders chat items with the tokenizer's chat template, learning only the assistant turns", function()
    local cfg = require("spec_helpers").shared("tokenizers/qwen3/tokenizer_config.json")
    if not cfg then
      print("skipped: no ../shared/tokenizers/qwen3 (set ADEPT_SHARED)")
      return
    end
    local dir = cfg:gsub("/tokenizer_config.json$", "")
    local items = spit("chat.jsonl", '{"messages": [{"role": "user", "content": "Hi"}, ' ..
      '{"role": "assistant", "content": "Hello there"}, {"role": "user", "content": "Bye"}, ' ..
      '{"role": "assistant", "content": "Bye!"}]}\n')
    local ds = adept.dataset{format = "instructions", path = items, tokenizer = dir, seq_len = 64}
    local b = ds:take(1, 1)[1]
    local t = adept.tokenizer(dir)
    local learned = {}
    for _, id in ipairs(b.targets:table()[1]) do if id >= 0 then learned[#learned + 1] = id end end
    -- the targets are the two assistant turns (the last one with Qwen3's empty think block), nothing else
    assert.are.equal("Hello there<|im_end|><think>\n\n</think>\n\nBye!<|im_end|>", t:decode(learned))
    local text = adept.chat_render(cfg, {{role = "user", content = "Hi"}, {role = "assistant", content = "Hello there"},
      {role = "user", content = "Bye"}, {role = "assistant", content = "Bye!"}})
    local inputs = {}
    for _, id in ipairs(b.inputs:table()[1]) do inputs[#inputs + 1] = id end
    assert.are.equal(text, t:decode({table.unpack(inputs, 1, #t:encode(text, {bos = false, eos = false}))}))
    -- plain refuses chat items; an unrecognised template is refused naming the file and the way out
    local ok, err = pcall(adept.dataset, {format = "instructions", path = items, tokenizer = dir, template = "plain"})
    assert.is_false(ok)
    assert.matches("need a chat template", err)
    local bad = spit("tokenizer_config.json", '{"chat_template": "{{ messages }}"}')
    ok, err = pcall(adept.dataset, {format = "instructions", path = items, tokenizer = dir, chat_template = bad})
    assert.is_false(ok)
    assert.matches(bad .. ": chat template not recognised", err, 1, true)
    assert.matches('template = "plain"', err, 1, true)
  end)
end)

local CFG = {vocab_size = 29, hidden_size = 16, intermediate_size = 24, num_hidden_layers = 3,
             num_attention_heads = 4, num_key_value_heads = 2, rms_norm_eps = 1e-5}
local TEXT = {
  {inputs = {{1, 5, 7, 2, 9, 4, 3}, {8, 8, 1, 0, 22, 5, 6}}, targets = {{5, 7, 2, 9, 4, 3, 11}, {8, 1, 0, 22, 5, 6, 28}}},
  {inputs = {{3, 4, 5, 6, 7, 8, 9}, {2, 2, 2, 2, 1, 1, 1}}, targets = {{4, 5, 6, 7, 8, 9, 10}, {2, 2, 1, -1, -1, -1, -1}}},
}
-- instruction rows: the prompt's targets are -1
local INSTR = {
  {inputs = {{1, 12, 13, 14, 20, 21, 2}, {1, 15, 16, 17, 18, 23, 24}}, targets = {{-1, -1, -1, 20, 21, 2, -1}, {-1, -1, -1, -1, 23, 24, 2}}},
  {inputs = {{1, 19, 20, 25, 26, 27, 2}, {1, 3, 3, 3, 3, 3, 9}}, targets = {{-1, -1, 25, 26, 27, 2, -1}, {-1, -1, -1, -1, -1, 9, 2}}},
  {inputs = {{1, 11, 10, 9, 8, 7, 6}, {1, 4, 4, 4, 4, 4, 4}}, targets = {{-1, -1, -1, -1, 7, 6, 2}, {-1, -1, -1, 4, 4, 4, 2}}},
}
local METRICS = {"mask_out", "mask_out_batches", "grad_weight", "rank", "fisher", "block_influence"}

local function model() return adept.model(CFG, {seed = 11, init_std = 0.4}) end

local function unit_values(scores)
  local out = {}
  for name, s in pairs(scores) do out[name] = type(s) == "number" and s or s:table() end
  return out
end

describe("adept.probe", function()
  it("with mix = 1 is exactly the text probe and with mix = 0 exactly the instruction probe", function()
    local m = model()
    for _, case in ipairs({{mix = 1, same = TEXT}, {mix = 0, same = INSTR}}) do
      local p = adept.probe{text = TEXT, instructions = INSTR, mix = case.mix}
      for _, metric in ipairs(METRICS) do
        local a = adept.importance.layers(m, p, {metric = metric})
        local b = adept.importance.layers(m, case.same, {metric = metric})
        assert.are.same(b, a)
      end
      for _, g in ipairs({"tensor", "row"}) do
        assert.are.same(unit_values(adept.importance.units(m, case.same, {granularity = g})),
                        unit_values(adept.importance.units(m, p, {granularity = g})))
      end
    end
  end)

  it("mask_out on a mixed probe is the increase of mix * L_text + (1 - mix) * L_instructions", function()
    local m = model()
    local mix = 0.3
    local function part_loss(batches)
      local s, n = 0, 0
      for _, b in ipairs(batches) do local l, k = m:loss(b); s, n = s + l * k, n + k end
      return s / n
    end
    local function mixed_loss() return mix * part_loss(TEXT) + (1 - mix) * part_loss(INSTR) end
    local base = mixed_loss()
    local scores, rec = adept.importance.layers(m, adept.probe{text = TEXT, instructions = INSTR, mix = mix})
    for l = 0, CFG.num_hidden_layers - 1 do
      local skipped = m:with_layers_skipped({l}, mixed_loss)
      assert.near(skipped - base, scores[l], 1e-9 * math.max(1, math.abs(skipped)))
    end
    assert.are.equal(mix, rec.probe.mix)
    assert.is_truthy(rec.details.parts.text and rec.details.parts.instructions)
  end)

  it("gradient metrics and units use the gradient of the mixed loss of each text/instruction batch pair", function()
    local m = model()
    local mix = 0.6
    local p = adept.probe{text = TEXT, instructions = INSTR, mix = mix}
    -- independent: per pair i (the text part cycles: 3 pairs), g = mix * g_text + (1 - mix) * g_instr
    local names = {}
    for _, q in ipairs(m:params()) do if q.trainable then names[#names + 1] = q.name end end
    local sums = {}
    for i = 1, #INSTR do
      m:zero_grad(); m:loss_and_grad(TEXT[(i - 1) % #TEXT + 1])
      local g = {}
      for _, name in ipairs(names) do g[name] = m:grad(name):mul(mix) end
      m:zero_grad(); m:loss_and_grad(INSTR[i])
      for _, name in ipairs(names) do
        local a = g[name]:add(m:grad(name):mul(1 - mix)):abs()
        sums[name] = sums[name] and sums[name]:add(a) or a
      end
    end
    m:zero_grad()
    local units = adept.importance.units(m, p)
    for _, name in ipairs(names) do
      local want = m:param(name):abs():mul(sums[name]):div(#INSTR):mean()
      assert.near(want, units[name], 1e-6 * math.abs(want))
    end
    -- fisher per layer: (1/pairs) sum_pairs sum_{θ in layer} g^2 over the decoder-layer tensors
    local fisher = adept.importance.layers(m, p, {metric = "fisher"})
    local want = {}
    for l = 0, CFG.num_hidden_layers - 1 do want[l] = 0 end
    for i = 1, #INSTR do
      m:zero_grad(); m:loss_and_grad(TEXT[(i - 1) % #TEXT + 1])
      local g = {}
      for _, q in ipairs(m:params()) do if q.layer then g[q.name] = m:grad(q.name):mul(mix) end end
      m:zero_grad(); m:loss_and_grad(INSTR[i])
      for _, q in ipairs(m:params()) do
        if q.layer then want[q.layer] = want[q.layer] + g[q.name]:add(m:grad(q.name):mul(1 - mix)):square():sum() end
      end
    end
    m:zero_grad()
    for l = 0, CFG.num_hidden_layers - 1 do assert.near(want[l] / #INSTR, fisher[l], 1e-6 * want[l]) end
  end)

  it("with combine = \"scores\" mixes each part's scores, as the official code mixes unit importance", function()
    local m = model()
    local p = adept.probe{text = TEXT, instructions = INSTR, mix = 0.25, combine = "scores"}
    local t, i = adept.importance.units(m, TEXT), adept.importance.units(m, INSTR)
    for name, v in pairs(adept.importance.units(m, p)) do
      assert.near(0.25 * t[name] + 0.75 * i[name], v, 1e-12 * math.abs(v))
    end
    local rt, ri = adept.importance.units(m, TEXT, {granularity = "row"}), adept.importance.units(m, INSTR, {granularity = "row"})
    for name, v in pairs(adept.importance.units(m, p, {granularity = "row"})) do
      local want = rt[name]:mul(0.25):add(ri[name]:mul(0.75)):table()
      for k, x in ipairs(v:table()) do assert.near(want[k], x, 1e-12 * math.abs(x)) end
    end
    local lt, li = adept.importance.layers(m, TEXT, {metric = "grad_weight"}), adept.importance.layers(m, INSTR, {metric = "grad_weight"})
    local mixed = adept.importance.layers(m, p, {metric = "grad_weight"})
    for l = 0, CFG.num_hidden_layers - 1 do assert.near(0.25 * lt[l] + 0.75 * li[l], mixed[l], 1e-12 * mixed[l]) end
  end)

  it("refuses bad options", function()
    assert.has_error(function() adept.probe{text = TEXT} end)
    assert.has_error(function() adept.probe{text = TEXT, instructions = INSTR, mix = 1.5} end)
    local ok, err = pcall(adept.probe, {text = TEXT, instructions = INSTR, mixx = 0.5})
    assert.is_false(ok)
    assert.matches("unknown option 'mixx'", err)
    assert.has_error(function() adept.probe{text = {}, instructions = INSTR} end)
    assert.has_error(function() adept.probe{text = TEXT, instructions = INSTR, combine = "mean"} end)
  end)
end)
