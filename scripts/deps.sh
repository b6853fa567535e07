#!/usr/bin/env bash
# Installs the Debian packages adeptlua needs, only those missing (idempotent).
#   scripts/deps.sh        what building and running need (make run)
#   scripts/deps.sh test   also the references the tests compare against (make test)
# As root it runs apt-get directly, otherwise through sudo; without either it prints the command and stops.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 libopenblas-dev libarchive-dev libcjson-dev libpcre2-dev libutf8proc-dev libcairo2-dev libssl-dev fonts-dejavu-core
  libdnnl-dev
  libopenmpi-dev openmpi-bin
)
if [[ "${1:-}" == "test" ]]; then
  # busted specs, PyTorch/NumPy references, libFuzzer and sanitizers
  packages+=(lua-busted python3-torch python3-numpy clang libclang-rt-14-dev)
  # Jinja2: the reference renderer of the chat-template parity test (tests/parity/test_chat_template.py)
  packages+=(python3-jinja2)
  # a one-node Slurm for the cluster-sweep test (tests/dist/slurm_sweep.sh starts it in a temp folder)
  packages+=(slurm-wlm munge)
  # Node.js for the @huggingface/tokenizers reference: only when no node/npm is on the PATH, since a
  # Node.js from another source (NodeSource bundles npm) conflicts with Debian's npm package
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

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
