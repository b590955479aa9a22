"""Several servers on one folder (loader input shared_job): images per second with 1, 2 and 3
real ComfyUI servers of one install, side by side in one run.

Two workloads, each on its own folder of 256x256 PNGs:
  gpu-like  loader -> a test node that waits 0.25 s (what a GPU does while the CPU idles) -> SaveImage
  cpu       loader -> ImageInvert -> SaveImage (all work on this machine's cores)
Images per second = images / (end of the last prompt - start of the first), from ComfyUI's own
history timestamps on every server. On the 2-core CI machine the servers share the same cores,
so the cpu workload cannot scale; the gpu-like one shows what claiming costs when each server
has its own GPU.

Run: scripts/bench.sh servers     (BENCH_SERVER_IMAGES=48 by default)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from bench_common import write_results  # first: puts tests/ on the path
from harness import ComfyClient, ComfyServer
from PIL import Image

IMAGES = int(os.environ.get("BENCH_SERVER_IMAGES", "48"))
WORKLOADS = {"gpu-like": 0.25, "cpu": 0.0}


def make_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"img_{i:04d}.png")


def workflow(folder: Path, job: str, sleep: float) -> dict:
    loader = {"class_type": "BatchImageLoader", "inputs": {
        "directory": str(folder), "filter_preset": "All Images", "iteration_mode": "Reset",
        "error_handling": "Stop on error", "shared_job": job}}
    prompt: dict = {"1": loader}
    image = ["1", 0]
    if sleep:
        prompt["2"] = {"class_type": "BIPTestSleep", "inputs": {"images": image, "seconds": sleep}}
    else:
        prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": image}}
    prompt["3"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"bench/{job}"}}
    return prompt


def span_of(clients: list[ComfyClient], folder: Path) -> tuple[float, int]:
    """(seconds from the first prompt's start to the last one's end, images processed) on all servers."""
    starts, ends, images = [], [], 0
    for client in clients:
        for entry in client.history().values():
            if entry["prompt"][2].get("1", {}).get("inputs", {}).get("directory") != str(folder):
                continue
            stamps = {ev: data.get("timestamp") for ev, data in entry["status"]["messages"]}
            if "execution_start" in stamps and "execution_success" in stamps and entry.get("outputs"):
                starts.append(stamps["execution_start"])
                ends.append(stamps["execution_success"])
                images += 1
    return (max(ends) - min(starts)) / 1000, images


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "install"
        servers = [ComfyServer(base, with_fixture_pack=True, name=f"server{i}").start() for i in range(3)]
        clients = [ComfyClient(s.url) for s in servers]
        try:
            for workload, sleep in WORKLOADS.items():
                for count in (1, 2, 3):
                    folder = servers[0].input_dir / f"{workload}-{count}"
                    make_folder(folder, IMAGES)
                    for client in clients[:count]:
                        client.queue_prompt(workflow(folder, f"{workload}-{count}", sleep))
                    for client in clients[:count]:
                        client.wait_idle(timeout=900, quiet_for=1.0)
                    seconds, images = span_of(clients[:count], folder)
                    assert images == IMAGES, f"{images} of {IMAGES} images processed"
                    rows.append({"workload": workload, "servers": count, "images": images,
                                 "seconds": seconds, "images_per_s": images / seconds})
        finally:
            for server in servers:
                server.stop()
    print(f"\nSeveral servers on one folder ({IMAGES} images of 256x256 per run)")
    print("| workload | servers | seconds | images/s | vs 1 server |\n|---|---|---|---|---|")
    for row in rows:
        one = next(r for r in rows if r["workload"] == row["workload"] and r["servers"] == 1)
        print(f"| {row['workload']} | {row['servers']} | {row['seconds']:.2f} | {row['images_per_s']:.2f} | "
              f"{row['images_per_s'] / one['images_per_s']:.2f}x |")
    write_results("servers", rows)


if __name__ == "__main__":
    main()
