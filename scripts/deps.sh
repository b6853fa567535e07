#!/usr/bin/env bash
# Installs the Debian packages adeptlua builds and tests with, only those missing (idempotent).
# As root it runs apt-get directly, otherwise through sudo; without either it prints the command and stops.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 libopenblas-dev libarchive-dev libcjson-dev libpcre2-dev libutf8proc-dev libcairo2-dev fonts-dejavu-core
  # tests: busted specs, PyTorch/NumPy references, libFuzzer and sanitizers, Node.js for the tokenizer reference
  lua-busted python3-torch python3-numpy clang libclang-rt-14-dev nodejs npm
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -eq 0 ]]; then
  runner=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  runner=(sudo)
else
  echo "deps: missing packages: ${missing[*]}"
  echo "deps: run as root:  apt-get update && ${cmd[*]}"
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${runner[@]}" apt-get update -qq
"${runner[@]}" "${cmd[@]}"
