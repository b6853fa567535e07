#!/bin/bash
# adept.sweep{launcher = "slurm"} against a real Slurm (issue 13): starts munged, slurmctld and slurmd on this
# machine (one node, localhost, a config and a munge key in a temporary folder, its own ports), runs a sweep of
# 2 runs as a job array, checks that both finished, that a second call skips them, that a failing run is
# reported with its log tail; then a 2-rank training job inside an allocation (srun --mpi=pmix, or mpirun in an
# salloc when PMIx is not usable). Skips (77) with the reason when Slurm cannot start here (not root, packages
# missing: make deps-test installs slurm-wlm and munge).
set -uo pipefail
exe=${ADEPTLUA:-$PWD/adeptlua}
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "skipped: starting slurmctld and slurmd here needs root"; exit 77; }
for b in slurmctld slurmd sbatch squeue munged; do
  command -v $b >/dev/null || [ -x /usr/sbin/$b ] || { echo "skipped: $b is not installed (slurm-wlm, munge)"; exit 77; }
done
export PATH=$PATH:/usr/sbin
t=$(mktemp -d /tmp/adept-slurm.XXXXXX)
chmod 755 "$t"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; for f in "$t"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; rm -rf "$t"; }
trap cleanup EXIT
# munge with its own key and socket
dd if=/dev/urandom of="$t/munge.key" bs=1024 count=1 status=none && chmod 400 "$t/munge.key"
munged --force --key-file="$t/munge.key" --socket="$t/munge.sock" --pid-file="$t/munged.pid" --log-file="$t/munged.log" \
  --seed-file="$t/munged.seed" > "$t/munged.out" 2>&1 || { cat "$t/munged.out"; echo "skipped: munged does not start here"; exit 77; }
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$t/state" "$t/spool"
cat > "$t/slurm.conf" <<CONF
ClusterName=adepttest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$t/munge.sock
CredType=cred/munge
StateSaveLocation=$t/state
SlurmdSpoolDir=$t/spool
SlurmctldPidFile=$t/slurmctld.pid
SlurmdPidFile=$t/slurmd.pid
SlurmctldLogFile=$t/slurmctld.log
SlurmdLogFile=$t/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=localhost CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=adepttest Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF=$t/slurm.conf
slurmctld -c > "$t/ctld.out" 2>&1 || { cat "$t/ctld.out" "$t/slurmctld.log"; echo "skipped: slurmctld does not start here"; exit 77; }
slurmd -c > "$t/d.out" 2>&1 || { cat "$t/d.out" "$t/slurmd.log"; echo "skipped: slurmd does not start here"; exit 77; }
for i in $(seq 1 30); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %t | grep -q idle || { sinfo; tail -5 "$t/slurmctld.log" "$t/slurmd.log"; echo "skipped: the node did not come up"; exit 77; }
echo "slurm up: $(sinfo -h -o '%P %t %D %c')"

# a tiny recipe: writes summary.json; fails when asked to
cat > "$t/recipe.lua" <<'LUA'
local a = adept.args
if a.fail then error("failing on purpose") end
adept.fs.mkdir_p(a.out)
adept.json.write(a.out .. "/summary.json", {x = a.x, seed = a.seed, square = a.x * a.x, rank_env = os.getenv("SLURM_ARRAY_TASK_ID")})
LUA
cat > "$t/sweep.lua" <<LUA
local rows, stats = adept.sweep{recipe = "$t/recipe.lua", grid = {x = {2, 3}}, out = "$t/sweep",
  launcher = "slurm", slurm = {cpus_per_task = 1, poll = 1}, report = false, host = "$exe", args = adept.args}
print("stats " .. stats.ran .. " " .. stats.skipped .. " " .. stats.failed)
for _, r in ipairs(rows) do print(r.dir, r.status, r.exit_code, r.square, r.rank_env) end
LUA
out=$("$exe" -q "$t/sweep.lua" 2>&1) || { echo "$out"; echo "FAIL: the Slurm sweep failed"; exit 1; }
echo "$out"
echo "$out" | grep -q "stats 2 0 0" || { echo "FAIL: expected 2 runs to run and none to fail"; exit 1; }
echo "$out" | grep -q "x=2,seed=0.*done.*0.*4" && echo "$out" | grep -q "x=3,seed=0.*done.*0.*9" || { echo "FAIL: results"; exit 1; }
grep -q '"launcher":"slurm"' "$t/sweep/x=2,seed=0/SWEEP_DONE" || { echo "FAIL: no SWEEP_DONE"; exit 1; }
out=$("$exe" -q "$t/sweep.lua" 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -q "stats 0 2 0" || { echo "$out"; echo "FAIL: the second call did not skip the finished runs"; exit 1; }
echo "a second call skipped both finished runs"
# a failing run: reported with its log tail, the sweep itself still ends
sed -i 's|out = "'"$t"'/sweep"|out = "'"$t"'/sweep_fail"|' "$t/sweep.lua"
out=$("$exe" -q "$t/sweep.lua" fail=1 2>&1)
echo "$out" | grep -q "stats 2 0 2" && echo "$out" | grep -q "failing on purpose" || { echo "$out"; echo "FAIL: failing runs not reported with their log"; exit 1; }
echo "failing runs reported with the tail of their log"

# 2 ranks of a training job inside an allocation
if command -v mpirun >/dev/null && "$exe" -e 'os.exit(adept.dist.mpi_built() and 0 or 1)'; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  "$exe" --threads 1 -q "$here/train_rank.lua" grad_accum=2 out="$t/one" || exit 1
  if srun -n 2 --mpi=pmix "$exe" --threads 1 -q "$here/train_rank.lua" out="$t/srun" > "$t/srun.log" 2>&1; then
    how="srun -n 2 --mpi=pmix"
  else
    echo "srun --mpi=pmix did not run the ranks here ($(tail -1 "$t/srun.log")); mpirun inside salloc instead"
    salloc -n 2 mpirun --oversubscribe -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$exe" --threads 1 -q \
      "$here/train_rank.lua" out="$t/srun" > "$t/srun.log" 2>&1 || { cat "$t/srun.log"; echo "FAIL: 2 ranks in an allocation"; exit 1; }
    how="salloc -n 2 mpirun"
  fi
  cmp -s "$t/one.losses" "$t/srun.losses" || { paste "$t/one.losses" "$t/srun.losses"; echo "FAIL: 2 ranks under Slurm differ from 1 process"; exit 1; }
  echo "$how: 2 ranks trained the same losses as 1 process with twice the accumulation (bitwise)"
fi
