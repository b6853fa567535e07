#!/bin/bash
# Importance probes split across ranks (issue 13): on 2 processes each rank scores every other probe batch and
# the sums are reduced, for every layer metric and for stage 2's unit scores. Checks: each rank ran passes over
# only its 2 of the 4 batches (the others are poisoned with ids outside the vocabulary), both ranks hold the same scores, and they equal one process's within
# the rounding of a sum taken in another order. Skips (77) without MPI.
set -uo pipefail
exe=${ADEPTLUA:-$PWD/adeptlua}
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (make deps installs openmpi-bin)"; exit 77; }
"$exe" -e 'os.exit(adept.dist.mpi_built() and 0 or 1)' || { echo "skipped: this build has no MPI communicator"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi=(mpirun -np 2 --oversubscribe --bind-to none -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/score.lua" <<'LUA'
-- scores of every metric on a fixed probe of 4 batches (row counts 2, 2, 2, 1: unequal token counts)
local m = adept.model({vocab_size = 37, hidden_size = 16, intermediate_size = 32, num_hidden_layers = 3,
  num_attention_heads = 4, num_key_value_heads = 2}, {seed = 3, init_std = 0.3})
local probe = {}
for b = 1, 4 do
  local rows = {}
  for r = 1, (b == 4 and 1 or 2) do
    local row = {}
    for t = 1, 9 do row[t] = (b * 131 + r * 17 + t * 7) % 37 end
    rows[r] = row
  end
  probe[b] = rows
end
-- Under 2 ranks the other rank's batches are replaced by ids outside the vocabulary (same shape): a rank that
-- ran a pass over a batch not its own would fail, so passing shows each rank touched only its share
if adept.dist.world_size() > 1 then
  for i, rows in ipairs(probe) do
    if (i - 1) % adept.dist.world_size() ~= adept.dist.rank() then
      for _, row in ipairs(rows) do for t = 1, #row do row[t] = 999 end end
    end
  end
end
local out = {layers = {}, units = {}}
for _, metric in ipairs{"mask_out", "mask_out_batches", "grad_weight", "rank", "fisher", "block_influence"} do
  out.layers[metric] = select(1, adept.importance.layers(m, probe, {metric = metric}))
end
m:freeze("all"); m:unfreeze("^model%.layers%.2%.")
for name, t in pairs(adept.importance.units(m, probe, {granularity = "row"})) do out.units[name] = t:table() end
local f = assert(io.open(adept.args.out .. "." .. adept.dist.rank(), "w"))
f:write(adept.json.encode(out))
f:close()
LUA
"$exe" --threads 1 -q "$tmp/score.lua" out="$tmp/one" || { echo "FAIL: 1 process"; exit 1; }
"${mpi[@]}" "$exe" --threads 1 -q "$tmp/score.lua" out="$tmp/two" > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: 2 processes"; exit 1; }
# Bounds: layer scores are sums in double of per-batch values that are bitwise the same on both sides (the same
# batch, the same model), added in another order: 1e-12 relative. Unit scores sum |gradient| in f32, 2 + 2 batches
# then the two partials against 4 in a row: a few ulp, 1e-6 relative.
"$exe" -e "
  local one, r0, r1 = adept.json.read('$tmp/one.0'), adept.json.read('$tmp/two.0'), adept.json.read('$tmp/two.1')
  -- every score bitwise the same on both ranks (compared key by key: table order is not JSON order)
  for metric, s in pairs(r0.layers) do
    for l, v in pairs(s) do assert(r1.layers[metric][l] == v, ('%s layer %s: the ranks differ'):format(metric, l)) end
  end
  for name, rows in pairs(r0.units) do
    for i, v in ipairs(rows) do assert(r1.units[name][i] == v, ('%s row %d: the ranks differ'):format(name, i)) end
  end
  for metric, s in pairs(one.layers) do
    for l = 0, 2 do
      local a, b = s[tostring(l)], r0.layers[metric][tostring(l)]
      assert(math.abs(a - b) <= 1e-12 * math.max(1e-300, math.abs(a)),
        ('%s layer %d: %.17g vs %.17g'):format(metric, l, a, b))
    end
  end
  local n = 0
  for name, rows in pairs(one.units) do
    for i, a in ipairs(rows) do
      local b = r0.units[name][i]
      assert(math.abs(a - b) <= 1e-6 * math.abs(a) + 1e-30, ('%s row %d: %.9g vs %.9g'):format(name, i, a, b))
      n = n + 1
    end
  end
  print(('6 layer metrics and %d unit rows: 2 ranks (half the batches each) equal 1 process'):format(n))
" || exit 1
