#!/bin/bash
# Faults under MPI (issue 13): an error on one rank ends the whole job within 60 s, naming the rank and its error;
# a rank killed mid-run (SIGKILL) ends the job within 60 s; running the same command again resumes from the last
# complete checkpoint and reaches the same losses as an uninterrupted run. Skips (77) without MPI.
set -uo pipefail
exe=${ADEPTLUA:-$PWD/adeptlua}
here=$(cd "$(dirname "$0")" && pwd)
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (make deps installs openmpi-bin)"; exit 77; }
"$exe" -e 'os.exit(adept.dist.mpi_built() and 0 or 1)' || { echo "skipped: this build has no MPI communicator"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun -np 2 --oversubscribe --bind-to none -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. rank 1 raises while rank 0 waits in a barrier
start=$(date +%s)
timeout 90 "${mpi[@]}" "$exe" -e 'if adept.dist.rank() == 1 then error("boom on purpose") end adept.dist.barrier()' \
  > "$tmp/err.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$tmp/err.log"; echo "FAIL: the job did not end with an error (rc $rc)"; exit 1; }
[ $took -le 60 ] || { echo "FAIL: the job took $took s to end"; exit 1; }
grep -q "rank 1 of 2.*boom on purpose" "$tmp/err.log" || { cat "$tmp/err.log"; echo "FAIL: the message does not name rank 1 and its error"; exit 1; }
echo "an error on rank 1 ended the job in $took s: $(grep -m1 'rank 1 of 2' "$tmp/err.log")"

# 2. rank 1 is killed at step 3 of 6; the job ends; the same command resumes; losses equal an uninterrupted run
"${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/clean" > "$tmp/clean.log" 2>&1 || { cat "$tmp/clean.log"; exit 1; }
start=$(date +%s)
timeout 90 "${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/killed" ckpt="$tmp/ck" die_at=3 > "$tmp/kill.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 60 ] || { cat "$tmp/kill.log"; echo "FAIL: after a SIGKILL of rank 1 the job ended with rc $rc after $took s"; exit 1; }
echo "a SIGKILL of rank 1 at step 3 ended the job in $took s (rc $rc): $(grep -m1 -i 'rank 1\|signal 9\|killed' "$tmp/kill.log")"
"${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/killed" ckpt="$tmp/ck" > "$tmp/resume.log" 2>&1 || { cat "$tmp/resume.log"; echo "FAIL: the resumed run failed"; exit 1; }
if cmp -s "$tmp/clean.losses" "$tmp/killed.losses"; then
  echo "resumed after the kill: the 6 losses equal the uninterrupted run's bitwise"
else
  paste "$tmp/clean.losses" "$tmp/killed.losses"; echo "FAIL: the resumed run's losses differ"; exit 1
fi

# 3. the same with ZeRO-1 (shard_optimizer): the checkpoint gathers the moments from both ranks, the resume
#    hands each rank its block back; the losses equal an uninterrupted sharded run's bitwise
"${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/zclean" shard=true > "$tmp/zclean.log" 2>&1 || { cat "$tmp/zclean.log"; exit 1; }
timeout 90 "${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/zkilled" ckpt="$tmp/zck" die_at=4 shard=true > "$tmp/zkill.log" 2>&1
"${mpi[@]}" "$exe" --threads 1 -q "$here/train_rank.lua" out="$tmp/zkilled" ckpt="$tmp/zck" shard=true > "$tmp/zresume.log" 2>&1 || { cat "$tmp/zresume.log"; echo "FAIL: the resumed ZeRO-1 run failed"; exit 1; }
if cmp -s "$tmp/zclean.losses" "$tmp/zkilled.losses"; then
  echo "ZeRO-1: resumed after a kill at step 4, the losses equal the uninterrupted sharded run's bitwise"
else
  paste "$tmp/zclean.losses" "$tmp/zkilled.losses"; echo "FAIL: the resumed ZeRO-1 run's losses differ"; exit 1
fi
