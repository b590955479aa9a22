"""GPU check and timing, for a machine with an NVIDIA GPU (not run on the project's CPU machines).

1. Placement: ComfyUI started with --gpu-only (and, where it has the flag, --fp16-intermediates
   too): the loader's IMAGE and MASK, and core LoadImage's, must arrive on the GPU in ComfyUI's
   intermediate dtype (a test node reports device and dtype). Any mismatch exits 1.
   A run of images_per_run = 2 must arrive there too, as one batch.
2. Timing: a folder of 2048x2048 JPEGs through ImageScaleBy 2x into a null sink, the pack's
   chain vs core LoadImage posted once per image, interleaved rounds, seconds per image; then the
   pack with images_per_run 8 vs 1 (ImageScaleBy works on the whole batch at once).

Run (each ComfyUI from a python that has its requirements):
  python bench/bench_gpu.py --comfyui .cache/comfyui            # 0.3.75
  python bench/bench_gpu.py --comfyui .cache/comfyui-0.33.0     # 0.33.0 (also --fp16-intermediates)
  python bench/bench_gpu.py --cpu ...                            # the same logic on CPU (a dry run)
A GPU machine without ComfyUI's full requirements: see bench/gpu_wheels.sh (wheels to carry,
installed with --no-index) and bench/README.md. Without the frontend package, pass
--front-end-root with any folder (an empty one is made when none is given).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_common import write_results  # first: puts tests/ on the path
from harness import ComfyClient, ComfyServer
from PIL import Image

SIZE, COUNT = 2048, 12


def make_jpegs(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(count):
        photo = np.stack([(x / 8 + 17 * i) % 256, (y / 8) % 256, ((x + y) / 16) % 256], axis=-1)
        photo = np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(folder / f"img_{i:03d}.jpg", quality=90)
    # Older than the prefetch's racy window, as files in a real folder are.
    time.sleep(2.1)


def rgba_png(path: Path) -> None:
    arr = np.zeros((64, 96, 4), dtype=np.uint8)
    arr[..., 0], arr[..., 3] = 200, np.linspace(0, 255, 96).astype(np.uint8)[None, :]
    Image.fromarray(arr, "RGBA").save(path)


def loader(directory: str, images_per_run: int = 1) -> dict:
    return {"class_type": "BatchImageLoader", "inputs": {
        "directory": directory, "filter_preset": "All Images", "iteration_mode": "Reset",
        "error_handling": "Stop on error", "images_per_run": images_per_run}}


def run_and_wait(client: ComfyClient, prompt: dict) -> list[str]:
    before = set(client.history())
    client.queue_prompt(prompt)
    client.wait_idle(timeout=1800, quiet_for=1.0)
    return [pid for pid in client.history() if pid not in before]


def placement(client: ComfyClient, server: ComfyServer, want_device: str, want_dtype: str) -> list[str]:
    """Problems with where the pack's IMAGE and MASK arrive, as lines (core's are printed)."""
    folder = server.input_dir / "placement"
    folder.mkdir(exist_ok=True)
    rgba_png(folder / "alpha.png")
    rgba_png(folder / "alpha2.png")
    problems = []
    cases = {
        "pack": {"1": loader(str(folder)),
                 "2": {"class_type": "BIPTestNullSink", "inputs": {"images": ["1", 0], "mask": ["1", 1]}}},
        "pack run": {"1": loader(str(folder), 2),
                     "2": {"class_type": "BIPTestNullSink", "inputs": {"images": ["1", 0], "mask": ["1", 1]}}},
        "core": {"1": {"class_type": "LoadImage", "inputs": {"image": "placement/alpha.png"}},
                 "2": {"class_type": "BIPTestNullSink", "inputs": {"images": ["1", 0], "mask": ["1", 1]}}},
    }
    for who, prompt in cases.items():
        ids = run_and_wait(client, prompt)
        history = client.history()
        seen = [history[pid]["outputs"].get("2", {}) for pid in ids]
        if not seen or not seen[0]:
            problems.append(f"{who}: no report from the sink ({[history[p]['status'] for p in ids]})")
            continue
        ui = seen[0]
        got = {"IMAGE": (ui["device"][0], ui["dtype"][0]), "MASK": (ui["mask_device"][0], ui["mask_dtype"][0])}
        print(f"  {who}: IMAGE {ui['shape'][0]} on {got['IMAGE'][0]} {got['IMAGE'][1]}, "
              f"MASK {ui['mask_shape'][0]} on {got['MASK'][0]} {got['MASK'][1]}")
        for name, (device, dtype) in got.items():
            # Core's placement is reported, not required: 0.3.75's LoadImage builds on the CPU.
            if who.startswith("pack") and (not device.startswith(want_device) or dtype != want_dtype):
                problems.append(f"{who}: {name} on {device} {dtype}, expected {want_device} {want_dtype}")
    return problems


def timeline(client: ComfyClient, ids: list[str]) -> float:
    history = client.history()
    spans = []
    for pid in ids:
        msgs = {m[0]: m[1] for m in history[pid]["status"]["messages"]}
        spans.append((msgs["execution_start"]["timestamp"], msgs["execution_success"]["timestamp"]))
    spans.sort()
    return (spans[-1][1] - spans[0][0]) / 1000 / len(spans)


def scaled_to_sink(image: list) -> dict:
    return {"10": {"class_type": "ImageScaleBy", "inputs": {"image": image, "upscale_method": "bilinear",
                                                             "scale_by": 2.0}},
            "11": {"class_type": "BIPTestNullSink", "inputs": {"images": ["10", 0]}}}


def timing(client: ComfyClient, server: ComfyServer, rounds: int, count: int) -> dict:
    folder = server.input_dir / "jpeg2048"
    make_jpegs(folder, count, SIZE)
    pack, core = [], []
    for r in range(rounds):
        for who in (("pack", "core") if r % 2 == 0 else ("core", "pack")):
            if who == "pack":
                ids = run_and_wait(client, {"1": loader(str(folder)), **scaled_to_sink(["1", 0])})
                assert len(ids) == count, f"the pack ran {len(ids)} prompts for {count} images"
                pack.append(timeline(client, ids))
            else:
                # New names each round: ComfyUI caches LoadImage by its input.
                names = []
                for path in sorted(folder.glob("*.jpg")):
                    link = server.input_dir / f"core{r}_{path.name}"
                    link.hardlink_to(path)
                    names.append(link.name)
                ids = [client.queue_prompt({"1": {"class_type": "LoadImage", "inputs": {"image": n}},
                                            **scaled_to_sink(["1", 0])}) for n in names]
                client.wait_idle(timeout=1800, quiet_for=1.0)
                core.append(timeline(client, ids))
    return {"pack_s": statistics.median(pack), "core_s": statistics.median(core),
            "pack_runs": pack, "core_runs": core}


def run_timing(client: ComfyClient, server: ComfyServer, rounds: int, count: int) -> dict:
    """Seconds per image of the pack with images_per_run 8 vs 1 on timing()'s folder."""
    folder = server.input_dir / "jpeg2048"
    per: dict[int, list[float]] = {1: [], 8: []}
    for r in range(rounds):
        for k in ((1, 8) if r % 2 == 0 else (8, 1)):
            ids = run_and_wait(client, {"1": loader(str(folder), k), **scaled_to_sink(["1", 0])})
            assert len(ids) == -(-count // k), f"{len(ids)} prompts for {count} images in runs of {k}"
            per[k].append(timeline(client, ids) * len(ids) / count)
    return {"k1_s": statistics.median(per[1]), "k8_s": statistics.median(per[8])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, default=None, help="ComfyUI folder (default: .cache/comfyui)")
    parser.add_argument("--cpu", action="store_true", help="dry run of the same logic on the CPU")
    parser.add_argument("--front-end-root", default=None, help="frontend folder (default: an empty one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=COUNT)
    opts = parser.parse_args()
    problems: list[str] = []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        front = opts.front_end_root or str(Path(tmp) / "empty-frontend")
        Path(front).mkdir(parents=True, exist_ok=True)
        server = ComfyServer(Path(tmp) / "probe", comfyui_dir=opts.comfyui, with_fixture_pack=True,
                             front_end_root=front, cpu=opts.cpu)
        has_fp16 = "--fp16-intermediates" in (server.comfyui_dir / "comfy" / "cli_args.py").read_text()
        variants = [[]] + ([["--fp16-intermediates"]] if has_fp16 else [])
        for extra in variants:
            device_args = [] if opts.cpu else ["--gpu-only"]
            server = ComfyServer(Path(tmp) / f"base{len(results)}", comfyui_dir=opts.comfyui, with_fixture_pack=True,
                                 front_end_root=front, cpu=opts.cpu, extra_args=(*device_args, *extra)).start()
            client = ComfyClient(server.url, str(uuid.uuid4()))
            try:
                version = str(client.get("/system_stats")["system"].get("comfyui_version", "unknown"))
                want_dtype = "torch.float16" if extra else "torch.float32"
                want_device = "cpu" if opts.cpu else "cuda"
                label = f"ComfyUI {version} {' '.join(device_args + extra) or '--cpu'}"
                print(f"{label}: expecting IMAGE and MASK on {want_device} as {want_dtype}")
                problems += [f"{label}: {p}" for p in placement(client, server, want_device, want_dtype)]
                row = {"label": label, **timing(client, server, opts.rounds, opts.images)}
                row.update(run_timing(client, server, opts.rounds, opts.images))
                results.append(row)
                print(f"  {opts.images} x {SIZE}x{SIZE} JPEG -> ImageScaleBy 2x -> null sink: pack "
                      f"{row['pack_s'] * 1000:.1f} ms/image, core LoadImage {row['core_s'] * 1000:.1f} ms/image, "
                      f"pack / core {row['pack_s'] / row['core_s']:.2f}; images_per_run 8: "
                      f"{row['k8_s'] * 1000:.1f} ms/image, 1: {row['k1_s'] * 1000:.1f} ms/image")
            finally:
                server.stop()
    print("\n| ComfyUI and flags | pack, s/image | core LoadImage, s/image | pack / core | K=8, s/image | K=8 / K=1 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['pack_s']:.4f} | {r['core_s']:.4f} | **{r['pack_s'] / r['core_s']:.2f}** | "
              f"{r['k8_s']:.4f} | **{r['k8_s'] / r['k1_s']:.2f}** |")
    write_results("gpu-cpu-dry-run" if opts.cpu else "gpu", {"rows": results, "problems": problems})
    for line in problems:
        print(f"PLACEMENT PROBLEM: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
