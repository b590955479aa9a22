#!/usr/bin/env bash
# The whole test suite: lint, unit tests and end-to-end tests against real ComfyUI servers on CPU.
#   1. the oldest supported ComfyUI (0.3.75, .cache/comfyui): unit + end-to-end, its own frontend
#   2. the newest ComfyUI in ../shared/comfyui/ when it is there: end-to-end, its own frontend
#   3. the browser tests once more with the newest frontend (--front-end-root)
# 2 and 3 run beside 1 (their output follows 1's).
# Each ComfyUI runs from its own virtual environment (see provision.sh); the first run on a fresh
# machine provisions them (a few minutes), later runs reuse them. Extra arguments go to every
# pytest run (e.g. scripts/test.sh -k sort). COMFYUI_DIR=/path/to/your/ComfyUI runs the whole
# suite once, against your own checkout only. The last lines say which versions ran.
set -euo pipefail
own_checkout="${COMFYUI_DIR:+1}"
# shellcheck source=provision.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/provision.sh"
cd "$REPO_ROOT"
if [ -z "$own_checkout" ]; then provision_newest; fi
# The browser test drives Debian's Chromium; install it when we can (root with apt). When it
# cannot be installed, that one test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing chromium for the browser test (apt)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "[test] could not install chromium: the browser test will be skipped" >&2
fi
"$VENV_PY" -m ruff check .

BIP_RUN_SUMMARY="$(mktemp)"
export BIP_RUN_SUMMARY
trap 'rm -f "$BIP_RUN_SUMMARY"' EXIT
status=0
# run_suite LABEL PYTHON COMFYUI_DIR FRONT_END_ROOT PYTEST_ARGS...: one pytest run; exit 5 (no
# test collected, e.g. extra arguments that select only unit tests) is not a failure of a later run.
run_suite() {
  local label="$1" py="$2" comfy="$3" front="$4" rc=0
  shift 4
  echo "[test] === $label ===" >&2
  BIP_RUN_LABEL="$label" COMFYUI_DIR="$comfy" BIP_FRONT_END_ROOT="$front" "$py" -m pytest "$@" || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then return 1; fi
}
# The newest ComfyUI's passes run beside the oldest one's: the end-to-end tests mostly wait on
# servers, so two versions at once take little more than the longer of the two. Their output is
# printed after the first pass's.
newest_log=""
newest_pid=""
if [ -n "${NEWEST_VENV_PY:-}" ] || [ -z "$own_checkout" ]; then
  newest_log="$(mktemp)"
  trap 'rm -f "$BIP_RUN_SUMMARY" "$newest_log"' EXIT
  (
    rc=0
    if [ -n "${NEWEST_VENV_PY:-}" ]; then
      run_suite "end-to-end tests" "$NEWEST_VENV_PY" "$NEWEST_COMFYUI_DIR" "" --ignore=tests/unit "$@" || rc=1
    fi
    if [ -z "$own_checkout" ]; then
      run_suite "browser tests, newest frontend" "${NEWEST_VENV_PY:-$VENV_PY}" "${NEWEST_COMFYUI_DIR:-$COMFYUI_DIR}" \
        "$NEWEST_FRONTEND_ROOT" tests/e2e/test_browser*.py "$@" || rc=1
    fi
    exit "$rc"
  ) >"$newest_log" 2>&1 &
  newest_pid=$!
fi
run_suite "all tests" "$VENV_PY" "$COMFYUI_DIR" "" "$@" || status=1
if [ -n "$newest_pid" ]; then
  wait "$newest_pid" || status=1
  cat "$newest_log"
fi
"$VENV_PY" "$REPO_ROOT/tests/run_summary.py" "$BIP_RUN_SUMMARY" || status=1
exit "$status"
