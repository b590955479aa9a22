#!/usr/bin/env bash
# Benchmarks (see bench/README.md): scripts/bench.sh [decode|listing|e2e|color|runs|jpeg_bound|servers ...] (default: decode listing e2e color).
# e2e runs once per provisioned ComfyUI version (0.3.75, and the newest in ../shared/comfyui/),
# each from its own venv, one after the other on the same machine. Results print as Markdown
# tables and are stored in bench/results/*.json (git-ignored). bench/bench_gpu.py is separate:
# it needs an NVIDIA GPU (see bench/README.md).
set -euo pipefail
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
cd "$REPO_ROOT/bench"
for which in "${@:-decode listing e2e color}"; do
  for name in $which; do
    if [ "$name" = e2e ]; then
      COMFYUI_DIR="$COMFYUI_DIR" "$VENV_PY" bench_e2e.py
      provision_newest
      if [ -n "$NEWEST_VENV_PY" ]; then
        COMFYUI_DIR="$NEWEST_COMFYUI_DIR" "$NEWEST_VENV_PY" bench_e2e.py
      fi
    else
      "$VENV_PY" "bench_$name.py"
    fi
  done
done
