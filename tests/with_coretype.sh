#!/bin/sh
# Runs a test command under one OpenBLAS kernel: with_coretype.sh CORE COMMAND [ARGS...].
# OPENBLAS_CORETYPE makes a DYNAMIC_ARCH OpenBLAS (Debian's) use that kernel instead of the one it detects.
# A kernel needing AVX-512 on a CPU without it would die of an illegal instruction: skip (77) and say why.
core=$1
shift
case $core in
  SkylakeX|Cooperlake|SapphireRapids)
    if ! grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
      echo "skipped: OPENBLAS_CORETYPE=$core needs AVX-512 and this CPU has no avx512f in /proc/cpuinfo"
      exit 77
    fi ;;
  Haswell|Zen)
    if ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
      echo "skipped: OPENBLAS_CORETYPE=$core needs AVX2 and this CPU has no avx2 in /proc/cpuinfo"
      exit 77
    fi ;;
esac
OPENBLAS_CORETYPE=$core
export OPENBLAS_CORETYPE
exec "$@"
