#!/usr/bin/env bash
# Wheels that a GPU machine without a package index needs to run bench/bench_gpu.py, fetched here
# (PyPI) for its Python 3.12 on x86_64, into bench/gpu-wheels/<group>/ (git-ignored). The groups
# are sized to be carried one per call (each under the 64 MiB a call may carry), with the tree:
#   base     what ComfyUI 0.3.75 and 0.33 import beyond torch/numpy/Pillow/aiohttp/... (~20 MB)
#   av       PyAV (both versions import it; 0.33's LoadImage decodes with it) (~36 MB)
#   kitchen  comfy-kitchen (0.33 imports it unconditionally) (~58 MB)
# On the GPU machine, one call per group, into a venv that keeps its torch (kept between calls
# while the machine stays warm):
#   python3 -m venv --system-site-packages .gpu-venv
#   .gpu-venv/bin/pip install --no-index --no-deps bench/gpu-wheels/<group>/*.whl
# then: .gpu-venv/bin/python bench/bench_gpu.py --comfyui <tree>   (see bench/README.md)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# The device's torch is 2.11: its matching torchvision/torchaudio, and the pins of ComfyUI 0.33.
base=(torchvision==0.26.0 torchaudio==2.11.0 torchsde==0.2.6 trampoline alembic Mako SQLAlchemy greenlet
      pydantic pydantic-core annotated-types typing-inspection pydantic-settings python-dotenv
      comfy-aimdo==0.4.13 simpleeval blake3 kornia kornia-rs)
fetch() {
  local group="$1"; shift
  mkdir -p "gpu-wheels/$group"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "gpu-wheels/$group" "$@"
  du -sh "gpu-wheels/$group"
}
fetch base "${base[@]}"
fetch av av==18.1.0
fetch kitchen comfy-kitchen==0.2.31
