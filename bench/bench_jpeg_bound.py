"""The 2048 px JPEG bound of issue 18 on this machine, without ComfyUI: how fast two threads that do
nothing but decode and convert every image can go, beside the single-thread decode floor (the
issue's yardstick: Pillow's bare load). Any pipeline through ComfyUI adds its prompts to the first
line; images_per_run = 8 is asked to reach 0.75x the floor.

  32 images, BENCH_BOUND_ROUNDS rounds (default 5) interleaved with the floor, medians:
  two threads running the pack's own decode (utils/images/decode.py) + conversion into a run's
  float batch slice (run_batch.write_slice) | decode only | Pillow's load only

Run: scripts/bench.sh jpeg_bound
"""

from __future__ import annotations

import importlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_common import load_pack, write_results  # first: puts tests/ on the path
from bench_e2e import make_folder, run_floor
from PIL import Image

ROUNDS = int(os.environ.get("BENCH_BOUND_ROUNDS", "5"))


def load(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def on_two_threads(paths: list[Path], work: Callable[[int, Path], object]) -> float:
    """Seconds per image with the images shared out over two threads."""
    def run(i: int) -> None:
        for path in paths[i::2]:
            work(i, path)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) / len(paths)


def main() -> None:
    pack = load_pack()
    decode = pack.utils.images.decode.decode_image
    write_slice = importlib.import_module(f"{pack.__name__}.utils.images.run_batch").write_slice
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp) / "jpg", "jpg", 2048, 32, seed=2048)
        outs = [(np.empty((2048, 2048, 3), np.float32), np.zeros((2048, 2048), np.float32))
                for _ in range(2)]  # reused, as the loader's are
        cases: dict[str, Callable[[], float]] = {
            "floor (Pillow load, 1 thread)": lambda: run_floor(paths),
            "2 threads decode + convert": lambda: on_two_threads(
                paths, lambda i, p: write_slice(*outs[i], decode(str(p)))),
            "2 threads decode": lambda: on_two_threads(paths, lambda i, p: decode(str(p))),
            "2 threads Pillow load": lambda: on_two_threads(paths, lambda i, p: load(p)),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, measure in cases.items():
                times[name].append(measure())
    medians = {name: statistics.median(v) for name, v in times.items()}
    floor = medians["floor (Pillow load, 1 thread)"]
    write_results("jpeg-bound", {"cores": os.cpu_count(), "ms": {k: v * 1000 for k, v in medians.items()}})
    print(f"\n2048 px JPEG, {os.cpu_count()} cores, ms per image, median of {ROUNDS} rounds\n")
    print("| case | ms per image | / floor |\n|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value * 1000:.1f} | {value / floor:.2f} |")


if __name__ == "__main__":
    main()
