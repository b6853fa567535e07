-- adept.save_tensors / adept.load_tensors: round trips, dtypes kept, metadata, determinism, and the errors
-- that misuse and malformed files give (never a crash).
local adept = require "adept"
local helpers = require "spec_helpers"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A safetensors file made by hand (no padding): header JSON text and raw data bytes.
local function handmade(header, data)
  return string.pack("<I8", #header) .. header .. data
end

local function header_of(path)
  local s = slurp(path)
  local n = string.unpack("<I8", s)
  return s:sub(9, 8 + n), n
end

describe("adept.save_tensors / load_tensors", function()
  local path

  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  it("round-trips shapes and bytes, 0-d and empty tensors included", function()
    local map = {w = adept.randn({3, 4}, 11), s = adept.zeros({}), e = adept.zeros({0, 5}), v = adept.randn({7}, 2)}
    adept.save_tensors(path, map)
    local got, meta = adept.load_tensors(path)
    assert.same({}, meta)
    local names = {}
    for k in pairs(got) do names[#names + 1] = k end
    table.sort(names)
    assert.same({"e", "s", "v", "w"}, names)
    for k, t in pairs(map) do
      assert.same(t:shape(), got[k]:shape())
      assert.equals(t:numel(), got[k]:numel())
    end
    -- saving what was loaded gives the same bytes: values, dtypes and order survived
    local again = os.tmpname()
    adept.save_tensors(again, got)
    assert.equals(slurp(path), slurp(again))
    os.remove(again)
  end)

  it("writes names sorted, the header padded to 8 bytes, and is deterministic", function()
    local a, b = adept.randn({2}, 1), adept.randn({3}, 2)
    adept.save_tensors(path, {zeta = a, alpha = b, mid = a})
    local h, n = header_of(path)
    assert.equals(0, n % 8)
    assert.truthy(h:find('"alpha"', 1, true) < h:find('"mid"', 1, true))
    assert.truthy(h:find('"mid"', 1, true) < h:find('"zeta"', 1, true))
    local other = os.tmpname()
    adept.save_tensors(other, {mid = a, alpha = b, zeta = a})
    assert.equals(slurp(path), slurp(other))
    os.remove(other)
  end)

  it("keeps metadata as a string map", function()
    adept.save_tensors(path, {x = adept.zeros({1})}, {format = "pt", note = "é \"quoted\""})
    local _, meta = adept.load_tensors(path)
    assert.same({format = "pt", note = "é \"quoted\""}, meta)
  end)

  it("keeps the dtype of a bf16 file and reads it at an odd alignment", function()
    -- one byte of u8 first makes the bf16 data start at an odd offset
    local hdr = '{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' ..
                '"h":{"dtype":"BF16","shape":[2,2],"data_offsets":[1,9]}}'
    spit(path, handmade(hdr, "\7" .. string.pack("<I2I2I2I2", 0x3f80, 0xc000, 0x4049, 0x0000)))
    local got = adept.load_tensors(path)
    assert.same({2, 2}, got.h:shape())
    if got.h.dtype then assert.equals("bf16", got.h:dtype()) end
    -- written back, the tensor is still BF16 with the same bytes
    local again = os.tmpname()
    adept.save_tensors(again, {h = got.h})
    local h = header_of(again)
    assert.truthy(h:find('"dtype":"BF16"', 1, true))
    assert.equals(string.pack("<I2I2I2I2", 0x3f80, 0xc000, 0x4049, 0x0000), slurp(again):sub(-8))
    os.remove(again)
  end)

  it("tensors outlive the file handle and other tensors", function()
    adept.save_tensors(path, {a = adept.randn({100}, 5), b = adept.randn({4}, 6)})
    local got = adept.load_tensors(path)
    local b = got.b
    got = nil
    collectgarbage()
    collectgarbage()
    assert.equals(4, b:numel())
    b:free()
    assert.has_error(function() b:numel() end, "adept.Tensor:numel: tensor was freed")
  end)

  it("overwrites a file whose tensors are still loaded without breaking them", function()
    adept.save_tensors(path, {w = adept.randn({5000}, 3)})
    local before = slurp(path)
    local got = adept.load_tensors(path)
    adept.save_tensors(path, {small = adept.zeros({1})})   -- replaces the file under the mapping
    local copy = os.tmpname()
    adept.save_tensors(copy, got)                          -- reads every page of the old tensor
    assert.equals(before, slurp(copy))
    os.remove(copy)
    local now = adept.load_tensors(path)
    assert.is_nil(now.w)
    assert.same({1}, now.small:shape())
  end)

  it("rejects misuse with standard argument errors", function()
    local t = adept.zeros({2})
    assert.has_error(function() adept.save_tensors() end,
      "adept.save_tensors: bad argument #1 (string expected, got no value)")
    assert.has_error(function() adept.save_tensors(path) end,
      "adept.save_tensors: bad argument #2 (table of name = tensor expected, got no value)")
    assert.has_error(function() adept.save_tensors(path, {t}) end,
      "adept.save_tensors: bad argument #2 (tensor names must be strings, got number key)")
    assert.has_error(function() adept.save_tensors(path, {w = 3}) end,
      "adept.save_tensors: bad argument #2 (value of 'w' must be a tensor, got number)")
    assert.has_error(function() adept.save_tensors(path, {w = t}, "meta") end,
      "adept.save_tensors: bad argument #3 (table of string metadata expected, got string)")
    assert.has_error(function() adept.save_tensors(path, {w = t}, {k = 1}) end,
      "adept.save_tensors: bad argument #3 (metadata value of 'k' must be a string, got number)")
    assert.has_error(function() adept.save_tensors(path, {["a\0b"] = t}) end,
      "adept.save_tensors: bad argument #2 (tensor names must not contain NUL bytes)")
    assert.has_error(function() adept.save_tensors(path, {__metadata__ = t}) end)
    local dead = adept.zeros({1})
    dead:free()
    assert.has_error(function() adept.save_tensors(path, {d = dead}) end, "adept.save_tensors: tensor was freed")
    assert.has_error(function() adept.load_tensors() end,
      "adept.load_tensors: bad argument #1 (string expected, got no value)")
    assert.has_error(function() adept.load_tensors({}) end)
  end)

  it("reports I/O failures with the path", function()
    local ok, err = pcall(adept.save_tensors, "/nonexistent-dir/x.safetensors", {w = adept.zeros({1})})
    assert.is_false(ok)
    assert.matches("adept.save_tensors: /nonexistent-dir/x.safetensors: cannot create: No such file", err, 1, true)
    ok, err = pcall(adept.load_tensors, path .. ".missing")
    assert.is_false(ok)
    assert.matches("adept.load_tensors: " .. path .. ".missing: No such file", err, 1, true)
  end)

  it("rejects malformed files with a message naming the problem", function()
    local cases = {
      {"x", "too short"},
      {string.pack("<I8", 1000) .. "{}", "header length 1000 is larger than the 2 bytes"},
      {handmade("not json", ""), "not valid JSON"},
      {handmade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', "1234"), "outside the data section"},
      {handmade('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', "12345678"), "needs 12 bytes"},
      {handmade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' ..
                '"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}', "123456"), "overlap"},
      {handmade('{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}', "1"), "unknown dtype 'Q4'"},
    }
    for _, c in ipairs(cases) do
      spit(path, c[1])
      local ok, err = pcall(adept.load_tensors, path)
      assert.is_false(ok)
      assert.matches(path, err, 1, true)
      assert.matches(c[2], err, 1, true)
    end
  end)

  it("fails cleanly on every truncation of a valid file", function()
    adept.save_tensors(path, {a = adept.randn({3}, 1), b = adept.zeros({2, 2})}, {k = "v"})
    local full = slurp(path)
    local cut = os.tmpname()
    for n = 0, #full - 1 do
      spit(cut, full:sub(1, n))
      local ok, err = pcall(adept.load_tensors, cut)
      assert.is_false(ok)
      assert.matches("adept.load_tensors: " .. cut, err, 1, true)
    end
    os.remove(cut)
  end)
end)
