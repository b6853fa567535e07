-- Layer selection for expansion: which layers get an identity copy. All layer indices are 0-based
-- (matching Hugging Face names); results are sorted ascending, ready for m:expand.
local M = {}

local function check_k(k, n, fname)
  if math.type(k) ~= "integer" or k < 0 then
    error(("adept.select.%s: k must be a non-negative integer, got %s"):format(fname, tostring(k)), 3)
  end
  if n and k > n then
    error(("adept.select.%s: k = %d is more than the %d layers available"):format(fname, k, n), 3)
  end
end

-- Sorts {layer -> score} into an array of {layer=, score=}, ties broken by the lower layer index.
local function ranked(scores, fname)
  if type(scores) ~= "table" then
    error(("adept.select.%s: scores must be a table {layer -> score}, got %s"):format(fname, type(scores)), 3)
  end
  local list = {}
  for layer, score in pairs(scores) do
    if math.type(layer) ~= "integer" or type(score) ~= "number" then
      error(("adept.select.%s: scores must map integer layers to numbers (got %s -> %s)"):format(
        fname, tostring(layer), tostring(score)), 3)
    end
    list[#list + 1] = {layer = layer, score = score}
  end
  table.sort(list, function(a, b)
    if a.score ~= b.score then return a.score < b.score end
    return a.layer < b.layer
  end)
  return list
end

local function first_k_layers(list, k)
  local out = {}
  for i = 1, k do out[i] = list[i].layer end
  table.sort(out)
  return out
end

-- ADEPT stage 1: the k layers whose removal hurts general ability least (argmin-k of the importance).
function M.least_important(scores, k)
  local list = ranked(scores, "least_important")
  check_k(k, #list, "least_important")
  return first_k_layers(list, k)
end

-- The inverse choice, for ablations: the k most general-critical layers.
function M.most_important(scores, k)
  local list = ranked(scores, "most_important")
  check_k(k, #list, "most_important")
  local reversed = {}
  for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end
  return first_k_layers(reversed, k)
end

-- LLaMA-Pro placement: one copy after every n/k original layers, the last one at the top
-- (32 layers, k = 8: after layers 3, 7, ..., 31).
function M.uniform(n_layers, k)
  check_k(k, n_layers, "uniform")
  local out = {}
  for i = 1, k do out[i] = (i * n_layers) // k - 1 end
  return out
end

-- k distinct layers drawn uniformly with a seed (Fisher-Yates on Lua 5.4's xoshiro generator,
-- reseeded locally so the caller's math.random stream is left alone).
function M.random(n_layers, k, seed)
  check_k(k, n_layers, "random")
  if math.type(seed) ~= "integer" then
    error("adept.select.random: seed must be an integer, got " .. tostring(seed), 2)
  end
  local state = {math.random(0)} -- keep the caller's stream: reseed from it afterwards
  math.randomseed(seed)
  local layers = {}
  for i = 1, n_layers do layers[i] = i - 1 end
  for i = n_layers, 2, -1 do
    local j = math.random(i)
    layers[i], layers[j] = layers[j], layers[i]
  end
  math.randomseed(state[1])
  local out = {}
  for i = 1, k do out[i] = layers[i] end
  table.sort(out)
  return out
end

-- The k top-most (deepest) layers, and the k bottom-most, for placement ablations.
function M.top(n_layers, k)
  check_k(k, n_layers, "top")
  local out = {}
  for i = 1, k do out[i] = n_layers - k + i - 1 end
  return out
end

function M.bottom(n_layers, k)
  check_k(k, n_layers, "bottom")
  local out = {}
  for i = 1, k do out[i] = i - 1 end
  return out
end

return M
