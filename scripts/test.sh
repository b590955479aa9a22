#!/usr/bin/env bash
# The whole test suite: lint, unit tests and end-to-end tests against real ComfyUI servers on CPU.
#   1. the oldest supported ComfyUI (0.3.75, .cache/comfyui): unit + end-to-end, its own frontend
#   2. the newest ComfyUI in ../shared/comfyui/ when it is there: end-to-end, its own frontend
#   3. the browser tests once more with the newest frontend (--front-end-root)
# 2 and 3 run beside 1, each in its own process (their output follows 1's).
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
# The newest ComfyUI's passes run beside the oldest one's, each in its own process: the end-to-end
# tests mostly wait on servers, so three passes at once take little more than the longest of them.
# Their output is printed after the first pass's.
side_logs=()
side_pids=()
trap 'rm -f "$BIP_RUN_SUMMARY" "${side_logs[@]}"' EXIT
# beside LABEL PYTHON COMFYUI_DIR FRONT_END_ROOT PYTEST_ARGS...: run_suite in the background.
beside() {
  local log
  log="$(mktemp)"
  side_logs+=("$log")
  run_suite "$@" >"$log" 2>&1 &
  side_pids+=("$!")
}
if [ -n "${NEWEST_VENV_PY:-}" ]; then
  beside "end-to-end tests" "$NEWEST_VENV_PY" "$NEWEST_COMFYUI_DIR" "" --ignore=tests/unit "$@"
fi
if [ -z "$own_checkout" ]; then
  beside "browser tests, newest frontend" "${NEWEST_VENV_PY:-$VENV_PY}" "${NEWEST_COMFYUI_DIR:-$COMFYUI_DIR}" \
    "$NEWEST_FRONTEND_ROOT" tests/e2e/test_browser*.py "$@"
fi
run_suite "all tests" "$VENV_PY" "$COMFYUI_DIR" "" "$@" || status=1
for i in "${!side_pids[@]}"; do
  wait "${side_pids[$i]}" || status=1
  cat "${side_logs[$i]}"
done
"$VENV_PY" "$REPO_ROOT/tests/run_summary.py" "$BIP_RUN_SUMMARY" || status=1
exit "$status"
