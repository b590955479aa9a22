"""What converting a photo's colour profile to sRGB costs next to decoding it (issue 19's target:
a profiled 2048 px JPEG converts in at most 1.3x its decode alone).

The same Display P3 JPEG is decoded by decode_image with color_profile Keep source (the decode
alone: same file, same reader, no conversion) and Convert to sRGB, interleaved, medians; plus
the 16-bit PNG path (converted in float from the profile) and the LittleCMS transform on its own.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import load_pack, write_results
from PIL import Image

load_pack()

import iccprofiles  # noqa: E402  (tests/, put on the path by bench_common)
from batch_image_processing.utils.images.color import CONVERT_TO_SRGB, KEEP_SOURCE  # noqa: E402
from batch_image_processing.utils.images.decode import decode_image  # noqa: E402
from batch_image_processing.utils.images.encode import write_png16  # noqa: E402

ROUNDS = 15


def timed(fn, runs: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of one call (CPU time: the work itself, which
    other processes on a busy machine do not inflate as much as they do wall time)."""
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def photo(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.stack([(x / 8) % 256, (y / 8) % 256, ((x + y) / 16) % 256], axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pixels, p3 = photo(2048), iccprofiles.display_p3()
        jpeg = folder / "p3.jpg"
        Image.fromarray(pixels).save(jpeg, quality=90, icc_profile=p3)
        png16 = folder / "p3_16.png"
        with open(png16, "wb") as fh:
            write_png16(fh, pixels[:1024, :1024].astype(np.uint16) * 257, {}, p3)
        for label, path in (("2048x2048 JPEG, Display P3", jpeg), ("1024x1024 16-bit PNG, Display P3", png16)):
            decode_image(str(path), CONVERT_TO_SRGB)  # builds and caches the transform once
            alone, converted = [], []
            for _ in range(3):  # interleaved: machine noise hits both alike
                alone.append(timed(lambda p=path: decode_image(str(p), KEEP_SOURCE), ROUNDS))
                converted.append(timed(lambda p=path: decode_image(str(p), CONVERT_TO_SRGB), ROUNDS))
            (aw, ac), (cw, cc) = (tuple(np.median(np.array(x), axis=0)) for x in (alone, converted))
            rows.append({"file": label, "decode_wall_ms": round(aw, 1), "convert_wall_ms": round(cw, 1),
                         "decode_cpu_ms": round(ac, 1), "convert_cpu_ms": round(cc, 1)})
    print("| file | decode alone (Keep source), wall / CPU | decode + convert to sRGB, wall / CPU | ratio wall / CPU |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['decode_wall_ms']} / {r['decode_cpu_ms']} ms | {r['convert_wall_ms']} / "
              f"{r['convert_cpu_ms']} ms | {r['convert_wall_ms'] / r['decode_wall_ms']:.2f}x / "
              f"{r['convert_cpu_ms'] / r['decode_cpu_ms']:.2f}x |")
    write_results("color", rows)


if __name__ == "__main__":
    main()
