#!/bin/sh
# Long fuzzing (make fuzz-long): every libFuzzer target in build-fuzz/ runs for SECONDS each from its kept corpus.
#   scripts/fuzz_long.sh [SECONDS] [name ...]      (default 1800 s, every target)
# Per target <name>:
#   - working corpus: build-fuzz/fuzz/<name>/corpus (kept between runs), seeds: tests/fuzz/corpus/<name>/;
#   - afterwards new coverage is merged (libFuzzer -merge=1 keeps only inputs that add coverage) into
#     tests/fuzz/corpus/<name>/, so the committed corpus grows by minimised inputs only;
#   - a crash, leak or timeout is minimised into tests/fuzz/regressions/<name>/, which `make test` replays
#     (ctest fuzz/<name>/regress) once the bug is fixed;
#   - executions and time go to build-fuzz/fuzz/<name>/stats.txt and a summary line on stdout.
set -u
secs=${1:-1800}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FUZZ_BUILD:-$root/build-fuzz} # FUZZ_BUILD=build-asan reuses the sanitizer build's targets
status=0
targets=""
if [ $# -gt 0 ]; then for n in "$@"; do targets="$targets $bin/fuzz_$n"; done; else targets=$(ls "$bin"/fuzz_* 2>/dev/null); fi
[ -n "$targets" ] || { echo "fuzz-long: no targets in $bin (run make fuzz)" >&2; exit 1; }
for t in $targets; do
  name=${t##*/fuzz_}
  work=$bin/fuzz/$name
  seeds=$root/tests/fuzz/corpus/$name
  regress=$root/tests/fuzz/regressions/$name
  mkdir -p "$work/corpus" "$work/artifacts" "$seeds"
  rm -f "$work/artifacts"/*
  dict=$root/tests/fuzz/fuzz_$name.dict
  set -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/artifacts/"
  [ -f "$dict" ] && set -- "$@" -dict="$dict"
  start=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1 "$t" "$@" "$work/corpus" "$seeds" > "$work/log.txt" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -n 1)
  # keep what adds coverage, minimised by the merge
  before=$(ls "$seeds" | wc -l)
  "$t" -merge=1 "$seeds" "$work/corpus" > "$work/merge.txt" 2>&1
  added=$(( $(ls "$seeds" | wc -l) - before ))
  findings=0
  for a in "$work/artifacts"/*; do
    [ -f "$a" ] || continue
    findings=$((findings + 1))
    mkdir -p "$regress"
    out=$regress/$(basename "$a")
    "$t" -minimize_crash=1 -max_total_time=60 -exact_artifact_path="$out" "$a" > "$work/minimize.txt" 2>&1 || true
    [ -f "$out" ] || cp "$a" "$out"
    echo "fuzz-long: $name: finding kept as $out" >&2
    status=1
  done
  line="$name: ${execs:-?} executions in ${took} s (exit $rc), $added inputs added to tests/fuzz/corpus/$name, $findings findings"
  echo "$line" | tee "$work/stats.txt"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
