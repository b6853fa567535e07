#!/bin/bash
# Packs stories260k_adept.adept, the bundle tests/recipes/bundle_other_machine.lua verifies in every test run:
# an adept.cpt run of ADEPT on stories260K (TinyStories -> MedQuAD, 6 steps) with its results and the hashes of
# its inputs, but not the inputs (the shared artefacts are never copied into the project: the test finds them by
# hash under ../shared). Packed on 2 threads with OpenBLAS's Haswell kernels, which the test uses too, so another
# machine (CI's fresh clone, a colleague's) must reproduce every metric bitwise.
# Rerun it when a change moves adept.cpt's numbers or its result files (the test then says "differs"), and say
# why in the commit.
#   tests/bundles/pack.sh [build/adeptlua]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
exe=$(realpath "${1:-$root/build/adeptlua}")
shared=$(realpath "${ADEPT_SHARED:-$root/../shared}")
export OPENBLAS_CORETYPE=Haswell
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/recipe"
cd "$t" # the corpus cache (.cache/) lands here, not in the source tree
printf 'local cpt = require "adept.cpt"\ncpt.main("adept")\n' > "$t/recipe/adept_run.lua"
opts=(model="$shared/models/stories260K" general="$shared/corpora/tinystories_val.txt"
      domain="$shared/corpora/medquad.txt.gz" k=2 steps=6 refresh=2 seq_len=32 batch_size=2 probe_batches=1
      eval_batches=2 shift_batches=1 max_documents=80 progress=false report=false out="$t/run")
ADEPT_HASH_CACHE=$t/sha256.json "$exe" --threads 2 -q "$t/recipe/adept_run.lua" "${opts[@]}"
"$exe" --threads 2 pack "$t/recipe/adept_run.lua" "${opts[@]}" -o "$t/exp.adept" --results "$t/run"
mv "$t/exp.adept" "$here/stories260k_adept.adept"
"$exe" inspect "$here/stories260k_adept.adept" | head -3
