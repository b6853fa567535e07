#!/bin/bash
# The gradient all-reduce overlapped with backward (issue 13; engine/train/grad_sync.c): 2 processes with 1 KiB
# buckets (every layer its own bucket, reduced by the helper thread while backward goes on below it) against
# the same run reducing the whole slab once after backward (bucket_mb=0): losses and final weights bitwise
# equal, for a Llama and a tied-head Qwen3 config (its head's gradient lands in the embedding row, reduced
# last), with 1 and 2 micro-batches per step; the metrics log shows several all-reduce calls per step against
# one. Skips (77) without MPI.
set -uo pipefail
exe=${ADEPTLUA:-$PWD/adeptlua}
here=$(cd "$(dirname "$0")" && pwd)
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (make deps installs openmpi-bin)"; exit 77; }
"$exe" -e 'os.exit(adept.dist.mpi_built() and 0 or 1)' || { echo "skipped: this build has no MPI communicator"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi=(mpirun -np 2 --oversubscribe --bind-to none -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for arch in llama qwen3; do
  for accum in 1 2; do
    for mb in 0 0.001; do
      "${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" arch=$arch grad_accum=$accum bucket_mb=$mb \
        out="$tmp/${arch}_${accum}_$mb" > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: 2 processes ($arch, bucket_mb=$mb)"; exit 1; }
    done
    a=$tmp/${arch}_${accum}_0 b=$tmp/${arch}_${accum}_0.001
    cmp -s "$a.losses" "$b.losses" && cmp -s "$a.model/model.safetensors" "$b.model/model.safetensors" \
      && echo "$arch, grad_accum $accum: bucketed and overlapped = one all-reduce after backward, bitwise" \
      || { echo "FAIL: $arch, grad_accum $accum: the bucketed run differs"; fail=1; }
    "$exe" -e "
      local function calls(p)
        local t = {}
        for line in io.lines(p) do
          local r = adept.json.decode(line)
          if r.type == 'train' then t[#t + 1] = r.allreduce_calls end
        end
        return t
      end
      local one, many = calls('$a.metrics.jsonl'), calls('$b.metrics.jsonl')
      assert(#one == 6 and #many == 6, 'six train records each')
      for i = 1, 6 do
        assert(one[i] == 1, 'bucket_mb=0 made ' .. tostring(one[i]) .. ' all-reduce calls')
        assert(many[i] >= 3, '1 KiB buckets made ' .. tostring(many[i]) .. ' all-reduce calls')
      end
      print(('$arch, grad_accum $accum: %d all-reduce calls per step against 1'):format(many[1]))
    " || fail=1
  done
done
exit $fail
