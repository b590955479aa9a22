"""End to end in a real ComfyUI (CPU): seconds per image, this pack's chain vs core LoadImage.

  ours   Batch Image Loader -> SaveImage, Queue pressed once; the pack queues each next image
  core   LoadImage -> SaveImage, the same images posted up front as N prompts (the fastest a
         user can drive core from outside: no gaps, no browser)
  free   a test node returning a ready noise image -> SaveImage, posted up front: what a loader
         that cost nothing would achieve (the lower bound of the ratio)
Both run on the same server, interleaved (ours, core, ours, core), on random-noise PNGs.
Time per image = (end of the last prompt - start of the first) / N, from ComfyUI's own
execution timestamps in /history. Also: the gap between two of our iterations (end of one
prompt to start of the next), and the server's memory over a 1,000-image batch.

Run: scripts/bench.sh e2e
"""

from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_common import write_results  # first: puts tests/ on the path
from harness import ComfyClient, ComfyServer
from PIL import Image

ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "4"))
MEMORY_IMAGES = int(os.environ.get("BENCH_MEMORY_IMAGES", "1000"))


def make_folder(folder: Path, count: int, size: int, seed: int) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(count):
        name = f"img_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name, compress_level=1)
        names.append(name)
    return names


def timeline(client: ComfyClient, prompt_ids: list[str]) -> list[tuple[float, float]]:
    """(start, end) in ms of each prompt, from ComfyUI's execution messages."""
    history = client.history()
    spans = []
    for pid in prompt_ids:
        msgs = dict((m[0], m[1]) for m in history[pid]["status"]["messages"])
        spans.append((msgs["execution_start"]["timestamp"], msgs["execution_success"]["timestamp"]))
    return sorted(spans)


def run_ours(client: ComfyClient, folder: Path, tag: str) -> tuple[list[tuple[float, float]], int]:
    before = set(client.history())
    prompt = {
        "1": {"class_type": "BatchImageLoader", "inputs": {
            "directory": str(folder), "filter_preset": "PNG Only", "iteration_mode": "Reset",
            "error_handling": "Stop on error"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"ours_{tag}/img"}},
    }
    client.queue_prompt(prompt)
    client.wait_idle(timeout=3600, quiet_for=1.0)
    new = [pid for pid in client.history() if pid not in before]
    return timeline(client, new), len(new)


def run_core(client: ComfyClient, subdir: str, names: list[str], tag: str) -> tuple[list[tuple[float, float]], int]:
    ids = []
    for name in names:
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": f"{subdir}/{name}"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"core_{tag}/img"}},
        }
        ids.append(client.queue_prompt(prompt))
    client.wait_idle(timeout=3600, quiet_for=1.0)
    return timeline(client, ids), len(ids)


def run_free(client: ComfyClient, count: int, size: int, tag: str) -> tuple[list[tuple[float, float]], int]:
    """The lower bound: N prompts whose image source costs nothing, posted up front."""
    ids = []
    for i in range(count):
        prompt = {
            "1": {"class_type": "BIPTestNoiseImage", "inputs": {"size": size, "index": i}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"free_{tag}/img"}},
        }
        ids.append(client.queue_prompt(prompt))
    client.wait_idle(timeout=3600, quiet_for=1.0)
    return timeline(client, ids), len(ids)


def per_image_s(spans: list[tuple[float, float]]) -> float:
    return (spans[-1][1] - spans[0][0]) / 1000 / len(spans)


def gaps_ms(spans: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[1] for a, b in itertools.pairwise(spans)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_run(server: ComfyServer, client: ComfyClient) -> dict:
    folder = server.input_dir / "mem"
    make_folder(folder, MEMORY_IMAGES, 64, seed=9)
    assert server.process is not None
    samples: list[tuple[int, float]] = []
    before = set(client.history())
    prompt = {
        "1": {"class_type": "BatchImageLoader", "inputs": {
            "directory": str(folder), "filter_preset": "PNG Only", "iteration_mode": "Reset",
            "error_handling": "Stop on error"}},
        "2": {"class_type": "BatchImageSaver", "inputs": {
            "images": ["1", 0], "output_directory": "mem", "filename": ["1", 2]}},
    }
    client.queue_prompt(prompt)
    while True:
        done = len(set(client.history()) - before)
        samples.append((done, rss_mb(server.process.pid)))
        q = client.queue()
        if done >= MEMORY_IMAGES and not q["queue_running"] and not q["queue_pending"]:
            break
        time.sleep(0.5)
    tenth = next(mb for n, mb in samples if n >= MEMORY_IMAGES // 10)
    return {"images": MEMORY_IMAGES, "rss_at_10%_mb": tenth, "rss_at_end_mb": samples[-1][1],
            "max_rss_mb": max(mb for _, mb in samples)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp) / "base", with_fixture_pack=True).start()
        client = ComfyClient(server.url, str(uuid.uuid4()))
        try:
            sets = {
                "30 x 1024x1024 PNG": ("big", make_folder(server.input_dir / "big", 30, 1024, 1), 1024),
                "100 x 256x256 PNG": ("small", make_folder(server.input_dir / "small", 100, 256, 2), 256),
            }
            rows = []
            for label, (subdir, names, size) in sets.items():
                ours_runs, core_runs, all_gaps, ours_exec, core_exec, free_runs = [], [], [], [], [], []
                for r in range(ROUNDS):
                    # Alternate who goes first: ComfyUI runs gc.collect() (~0.3 s here) after a prompt
                    # when 10 s have passed since the last one, which lands on whoever starts a round.
                    for who in (("ours", "core", "free") if r % 2 == 0 else ("free", "core", "ours")):
                        if who == "ours":
                            spans, n = run_ours(client, server.input_dir / subdir, f"{subdir}{r}")
                            assert n == len(names), f"ours ran {n} prompts for {len(names)} images"
                            ours_runs.append(per_image_s(spans))
                            all_gaps += gaps_ms(spans)
                            ours_exec += [b - a for a, b in spans]
                        elif who == "free":
                            spans, n = run_free(client, len(names), size, f"{subdir}{r}")
                            free_runs.append(per_image_s(spans))
                        else:
                            spans, n = run_core(client, subdir, names, f"{subdir}{r}")
                            core_runs.append(per_image_s(spans))
                            core_exec += [b - a for a, b in spans]
                            core_gaps = gaps_ms(spans)
                ours, core = statistics.median(ours_runs), statistics.median(core_runs)
                free = statistics.median(free_runs)
                rows.append({"set": label, "ours_s_per_image": ours, "core_s_per_image": core,
                             "ratio": ours / core, "free_loader_ratio": free / core,
                             "gap_median_ms": statistics.median(all_gaps),
                             "gap_p95_ms": sorted(all_gaps)[int(len(all_gaps) * 0.95) - 1],
                             "gap_max_ms": max(all_gaps),
                             "ours_prompt_median_ms": statistics.median(ours_exec),
                             "core_prompt_median_ms": statistics.median(core_exec),
                             "core_gap_median_ms": statistics.median(core_gaps),
                             "core_gap_max_ms": max(core_gaps)})
            memory = memory_run(server, client)
        finally:
            server.stop()
    print(f"\nEnd to end in a real ComfyUI on CPU (median of {ROUNDS} rounds, alternating who goes first)")
    print("| images | core LoadImage, s/image | ours, s/image | ours / core | our gap median / p95 / max | "
          "one prompt, core / ours | core's gap median / max | a free loader / core |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['core_s_per_image']:.4f} | {r['ours_s_per_image']:.4f} | {r['ratio']:.2f} | "
              f"{r['gap_median_ms']:.0f} / {r['gap_p95_ms']:.0f} / {r['gap_max_ms']:.0f} ms | "
              f"{r['core_prompt_median_ms']:.0f} / {r['ours_prompt_median_ms']:.0f} ms | "
              f"{r['core_gap_median_ms']:.0f} / {r['core_gap_max_ms']:.0f} ms | {r['free_loader_ratio']:.2f} |")
    print(f"\nServer memory over a {memory['images']}-image batch (64x64 PNGs, loader -> Batch Image Saver): "
          f"RSS {memory['rss_at_10%_mb']:.0f} MiB at 10%, {memory['rss_at_end_mb']:.0f} MiB at the end, "
          f"max {memory['max_rss_mb']:.0f} MiB")
    write_results("e2e", {"rows": rows, "memory": memory})


if __name__ == "__main__":
    main()
