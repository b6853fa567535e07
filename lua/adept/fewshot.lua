-- Few-shot exemplars for adept.eval (choices and generate_match), lm-evaluation-harness style: k solved items
-- rendered as "Question: ...\nAnswer: ...\n\n" before every scored prompt. Where the exemplars come from and
-- which items are then left unscored is decided here, once, for both evaluations (docs/eval.md, "Few-shot").
local M = {}

-- split(items, k, pool, fname) -> exemplars, scored, excluded
-- pool == nil: the first k items are the exemplars and are not scored. pool given (the shots_from set): its first
-- k items are the exemplars and every item may be scored. Either way an item whose question equals an
-- exemplar's question is not scored (it would see its own answer in the prompt); `excluded` counts those.
function M.split(items, k, pool, fname)
  if k == 0 then return {}, items, 0 end
  local source = pool or items
  if #source < k then
    error(("adept.eval.%s: shots = %d needs %d exemplars, but %s holds %d items"):format(
      fname, k, k, pool and "shots_from" or "the item set", #source), 3)
  end
  local exemplars, seen = {}, {}
  for i = 1, k do
    exemplars[i] = source[i]
    seen[source[i].question] = true
  end
  local scored, excluded = {}, 0
  for i = pool and 1 or k + 1, #items do
    if seen[items[i].question] then excluded = excluded + 1
    else scored[#scored + 1] = items[i] end
  end
  return exemplars, scored, excluded
end

-- The text before a scored prompt: each exemplar's rendered question, a space, its answer text, a blank line.
function M.prefix(exemplars, render_question, answer_text)
  local parts = {}
  for i, e in ipairs(exemplars) do parts[i] = render_question(e) .. " " .. answer_text(e) .. "\n\n" end
  return table.concat(parts)
end

-- shots = k checked: a non-negative integer (0 or nil = zero-shot).
function M.count(v, fname)
  if v == nil then return 0 end
  if math.type(v) ~= "integer" or v < 0 then
    error(("adept.eval.%s: shots must be a non-negative integer, got %s"):format(fname, tostring(v)), 3)
  end
  return v
end

return M
