#!/usr/bin/env bash
# Benchmarks (see bench/README.md): scripts/bench.sh [decode|listing|e2e ...] (default: all three).
# Results print as Markdown tables and are stored in bench/results/*.json (git-ignored).
set -euo pipefail
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
cd "$REPO_ROOT/bench"
for which in "${@:-decode listing e2e}"; do
  for name in $which; do
    "$VENV_PY" "bench_$name.py"
  done
done
