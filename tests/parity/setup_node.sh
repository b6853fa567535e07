#!/usr/bin/env bash
# Installs the JavaScript tokenizer reference (@huggingface/tokenizers, pure JS) into tests/parity/node_modules
# (git-ignored). Needs npm and the registry once; afterwards the tests run offline. Exit 77 when unavailable.
set -u
cd "$(dirname "$0")"
[[ -f node_modules/@huggingface/tokenizers/package.json ]] && exit 0
command -v node >/dev/null && command -v npm >/dev/null || { echo "setup_node: node/npm not installed"; exit 77; }
timeout 180 npm install --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || {
  echo "setup_node: npm install @huggingface/tokenizers failed (registry unreachable?)"; exit 77; }
[[ -f node_modules/@huggingface/tokenizers/package.json ]] || exit 77
