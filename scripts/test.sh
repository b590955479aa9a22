#!/usr/bin/env bash
# The whole test suite: lint, unit tests and end-to-end tests against a real ComfyUI on CPU.
# On a fresh machine it first provisions .cache/venv and .cache/comfyui (see provision.sh);
# later runs reuse them. Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -k sort).
# COMFYUI_DIR=/path/to/your/ComfyUI runs the end-to-end tests against your own checkout.
set -euo pipefail
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
cd "$REPO_ROOT"
"$VENV_PY" -m ruff check .
exec "$VENV_PY" -m pytest "$@"
