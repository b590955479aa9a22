#!/usr/bin/env bash
# The whole test suite: lint, unit tests and end-to-end tests against a real ComfyUI on CPU.
# On a fresh machine it first provisions .cache/venv and .cache/comfyui (see provision.sh);
# later runs reuse them. Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -k sort).
# COMFYUI_DIR=/path/to/your/ComfyUI runs the end-to-end tests against your own checkout.
set -euo pipefail
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
cd "$REPO_ROOT"
# The browser test drives Debian's Chromium; install it when we can (root with apt). When it
# cannot be installed, that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing chromium for the browser test (apt)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "[test] could not install chromium: the browser test will be skipped" >&2
fi
"$VENV_PY" -m ruff check .
exec "$VENV_PY" -m pytest "$@"
