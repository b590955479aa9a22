#!/usr/bin/env bash
# Demo: start a real ComfyUI (CPU) with this pack, queue the example workflow ONCE on a folder of
# generated sample images, wait for the whole batch, print where the results are, and leave the
# server running for you to open in a browser (Ctrl-C stops it; --stop stops it at once).
# Options: --stop, --port N. Works from any current directory.
set -euo pipefail
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
exec "$VENV_PY" "$REPO_ROOT/scripts/demo.py" "$@"
