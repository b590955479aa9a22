"""Per-image decode + convert time: this pack vs ComfyUI's LoadImage vs the bare decode floor.

Measured side by side in one process, interleaved, median of several rounds:
  floor      Image.open(path).load()                        (what any loader must pay)
  ours       decode_image + to_tensors (CPU, float32)       (this pack's loader path)
  core PIL   ComfyUI's own LoadImage().load_image(path)     (imported from the ComfyUI under test)
  core PyAV  PyAV decode -> float tensor                    (a reproduction of newer ComfyUI's path)
Also the host memory the conversion allocates beyond the decoded image (tracemalloc sees
numpy arrays and Python bytes, which is where host-side copies would show).

Run: scripts/bench.sh decode   (or: .cache/venv/bin/python bench/bench_decode.py)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from bench_common import load_pack, write_results  # first: puts tests/ on the path
from harness import default_comfyui_dir
from imagefiles import png16_bytes  # tests/imagefiles.py: the same writer the tests use
from PIL import Image

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))


def make_files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {}
    files["1024x1024 PNG (noise)"] = folder / "noise1024.png"
    Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(files["1024x1024 PNG (noise)"])
    files["4096x4096 JPEG (photo-like)"] = folder / "big.jpg"
    y, x = np.mgrid[0:4096, 0:4096].astype(np.float32)
    photo = np.stack([(x / 16) % 256, (y / 16) % 256, ((x + y) / 32) % 256], axis=-1)
    photo += rng.normal(0, 12, photo.shape)
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(files["4096x4096 JPEG (photo-like)"], quality=90)
    files["1024x1024 16-bit gray PNG"] = folder / "gray16.png"
    Image.fromarray(rng.integers(0, 65536, (1024, 1024), dtype=np.uint16)).save(files["1024x1024 16-bit gray PNG"])
    files["1024x1024 16-bit RGB PNG"] = folder / "rgb16.png"
    files["1024x1024 16-bit RGB PNG"].write_bytes(
        png16_bytes(rng.integers(0, 65536, (1024, 1024, 3), dtype=np.uint16)))
    return files


def floor(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def core_pil_loader():
    comfy = str(default_comfyui_dir())
    if comfy not in sys.path:
        sys.path.insert(0, comfy)
    saved = sys.argv
    sys.argv = [saved[0], "--cpu"]  # ComfyUI parses its CLI flags at import time
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import nodes as comfy_nodes  # ComfyUI's nodes.py
    finally:
        sys.argv = saved
    loader = comfy_nodes.LoadImage()
    return lambda path: loader.load_image(str(path))


def floor16(path: Path) -> None:
    """Bare 16-bit decode (libpng through torchvision): Pillow's decode reduces RGB to 8 bits."""
    from torchvision.io import ImageReadMode, decode_png

    decode_png(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)


def core_pyav(path: Path):
    """Decode with PyAV to packed RGB (48-bit for 16-bit sources) and convert, as newer ComfyUI does."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        deep = frame.format.name in ("gray16be", "gray16le", "rgb48be", "rgb48le", "rgba64be", "rgba64le")
        arr = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    scale = 65535.0 if deep else 255.0
    return torch.from_numpy(arr.astype(np.float32) / scale)[None]


def median_ms(fn, path: Path, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def host_alloc_mb(fn, path: Path) -> float:
    tracemalloc.start()
    fn(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    pack = load_pack()
    decode_image, to_tensors = pack.utils.images.decode.decode_image, pack.utils.images.tensors.to_tensors

    def ours(path: Path):
        return to_tensors(decode_image(str(path)))

    candidates = {"floor": floor, "ours": ours, "core PIL": core_pil_loader()}
    try:
        import av  # noqa: F401

        candidates["core PyAV (repro)"] = core_pyav
    except ImportError:
        pass
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        for label, path in files.items():
            cands = dict(candidates)
            if "16-bit RGB" in label:
                cands["floor"] = floor16
            for fn in cands.values():  # warm up caches and lazy imports
                fn(path)
            timings: dict[str, list[float]] = {name: [] for name in cands}
            for _ in range(ROUNDS):  # interleaved, so drift hits every candidate alike
                for name, fn in cands.items():
                    timings[name].append(median_ms(fn, path, 1))
            med = {name: statistics.median(v) for name, v in timings.items()}
            alloc = {name: host_alloc_mb(fn, path) for name, fn in cands.items() if name != "floor"}
            with Image.open(path) as probe:
                pixels = probe.size[0] * probe.size[1]
            alloc["IMAGE+MASK size"] = pixels * 16 / 2**20
            rows.append({"file": label, "ms": med, "host_alloc_mb": alloc,
                         "overhead_vs_floor": (med["ours"] - med["floor"]) / med["floor"]})
    print(f"\nPer-image decode + convert (median of {ROUNDS}, ms; CPU; torch {torch.__version__})")
    names = list(candidates)
    print("| file | " + " | ".join(names) + " | ours over floor | ours / core PIL |")
    print("|---" * (len(names) + 3) + "|")
    for r in rows:
        cells = " | ".join(f"{r['ms'][n]:.1f}" for n in names)
        print(f"| {r['file']} | {cells} | {r['overhead_vs_floor'] * 100:+.0f}% | "
              f"{r['ms']['ours'] / r['ms']['core PIL']:.2f} |")
    print("\nPeak host memory of decode+convert, returned tensors included (tracemalloc, MiB)")
    mem_cols = [n for n in names if n != "floor"] + ["IMAGE+MASK size"]
    print("| file | " + " | ".join(mem_cols) + " |")
    print("|---" * (len(mem_cols) + 1) + "|")
    for r in rows:
        print(f"| {r['file']} | " + " | ".join(f"{r['host_alloc_mb'][n]:.0f}" for n in mem_cols) + " |")
    print("(floor of the 16-bit RGB row: libpng via torchvision, the only bare decoder here that keeps 16 bits)")
    write_results("decode", rows)


if __name__ == "__main__":
    main()
