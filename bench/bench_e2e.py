"""End to end in a real ComfyUI (CPU): seconds per image of this pack vs core LoadImage vs the
bare decode floor, side by side in one run, for one ComfyUI version (scripts/bench.sh e2e runs
it once per provisioned version, each from its own venv, and prints them together).

  floor  Pillow decode of the same files (Image.open().load()), one thread, in this process
  core   LoadImage -> sink, the same images posted up front as N prompts (the fastest a user
         can drive core from outside: no gaps, no browser)
  pack   Batch Image Loader -> sink, Queue pressed once; the pack queues each next image
Sinks: "null" (a test node that only reads the IMAGE's shape: the loader plus ComfyUI's own
per-prompt work) and "save" (core SaveImage). Rounds are interleaved, the order alternating,
and medians reported. Time per image = (end of the last prompt - start of the first) / N, from
ComfyUI's own execution timestamps in /history. Also the server's CPU time per image (all its
threads), which depends much less on what else the machine runs.

Run: scripts/bench.sh e2e   (BENCH_E2E_ROUNDS, BENCH_MEMORY_IMAGES=0 to skip the memory run)
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

ROUNDS = int(os.environ.get("BENCH_E2E_ROUNDS", "3"))
MEMORY_IMAGES = int(os.environ.get("BENCH_MEMORY_IMAGES", "1000"))
SETS = (  # label, file kind, size, count
    ("256x256 PNG", "png", 256, 100),
    ("1024x1024 PNG", "png", 1024, 30),
    ("2048x2048 JPEG", "jpg", 2048, 20),
)
SINKS = tuple(os.environ.get("BENCH_E2E_SINKS", "null save").split())
ONLY = os.environ.get("BENCH_E2E_ONLY", "")  # e.g. "JPEG": only the sets whose label contains it


def picture(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """PNG: noise (the slowest to decode per pixel); JPEG: photo-like gradients with grain."""
    if kind == "png":
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 255)
    photo = np.stack([(x / 8 + phase) % 256, (y / 8) % 256, ((x + y) / 16) % 256], axis=-1)
    return np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)


def make_folder(folder: Path, kind: str, size: int, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:04d}.{kind}"
        save = {"compress_level": 1} if kind == "png" else {"quality": 90}
        Image.fromarray(picture(rng, size, kind)).save(path, **save)
        paths.append(path)
    return paths


def sink_node(sink: str, image: list, tag: str) -> dict:
    if sink == "null":
        return {"class_type": "BIPTestNullSink", "inputs": {"images": image}}
    return {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": f"{tag}/img"}}


def timeline(client: ComfyClient, prompt_ids: list[str]) -> list[tuple[float, float]]:
    """(start, end) in ms of each prompt, from ComfyUI's execution messages."""
    history = client.history()
    spans = []
    for pid in prompt_ids:
        msgs = {m[0]: m[1] for m in history[pid]["status"]["messages"]}
        spans.append((msgs["execution_start"]["timestamp"], msgs["execution_success"]["timestamp"]))
    return sorted(spans)


def run_pack(client: ComfyClient, folder: Path, sink: str, tag: str) -> list[tuple[float, float]]:
    before = set(client.history())
    client.queue_prompt({
        "1": {"class_type": "BatchImageLoader", "inputs": {
            "directory": str(folder), "filter_preset": "All Images", "iteration_mode": "Reset",
            "error_handling": "Stop on error"}},
        "2": sink_node(sink, ["1", 0], tag),
    })
    client.wait_idle(timeout=3600, quiet_for=1.0)
    return timeline(client, [pid for pid in client.history() if pid not in before])


def run_core(client: ComfyClient, images: list[str], sink: str, tag: str) -> list[tuple[float, float]]:
    ids = [client.queue_prompt({
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": sink_node(sink, ["1", 0], tag),
    }) for name in images]
    client.wait_idle(timeout=3600, quiet_for=1.0)
    return timeline(client, ids)


def run_floor(paths: list[Path]) -> float:
    """Seconds per image of Pillow's bare decode, one thread."""
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            img.load()
    return (time.perf_counter() - start) / len(paths)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_image_s(spans: list[tuple[float, float]]) -> float:
    return (spans[-1][1] - spans[0][0]) / 1000 / len(spans)


def gaps_ms(spans: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[1] for a, b in itertools.pairwise(spans)]


def core_names(server: ComfyServer, paths: list[Path], subdir: str, rnd: int) -> list[str]:
    """Hard links under new names for each core round: ComfyUI caches LoadImage by its input
    (0.33 keeps results across prompts), so a repeated name would measure nothing."""
    folder = server.input_dir / f"{subdir}_core{rnd}"
    folder.mkdir()
    for path in paths:
        os.link(path, folder / path.name)
    return [f"{folder.name}/{p.name}" for p in paths]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_run(server: ComfyServer, client: ComfyClient) -> dict:
    folder = server.input_dir / "mem"
    make_folder(folder, "png", 64, MEMORY_IMAGES, seed=9)
    assert server.process is not None
    samples: list[tuple[int, float]] = []
    before = set(client.history())
    client.queue_prompt({
        "1": {"class_type": "BatchImageLoader", "inputs": {
            "directory": str(folder), "filter_preset": "PNG Only", "iteration_mode": "Reset",
            "error_handling": "Stop on error"}},
        "2": {"class_type": "BatchImageSaver", "inputs": {
            "images": ["1", 0], "output_directory": "mem", "filename": ["1", 2]}},
    })
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


def measure_set(server: ComfyServer, client: ComfyClient, label: str, kind: str, size: int, count: int) -> list[dict]:
    subdir = f"{kind}{size}"
    paths = make_folder(server.input_dir / subdir, kind, size, count, seed=size)
    core_sets = [core_names(server, paths, subdir, r) for r in range(ROUNDS * len(SINKS))]
    time.sleep(2.1)  # files older than the prefetch's racy window, as in any real folder
    rows = []
    for s, sink in enumerate(SINKS):
        floor, core, pack, pack_gaps, core_gaps, pack_exec = [], [], [], [], [], []
        cpu: dict[str, list[float]] = {"core": [], "pack": []}
        for r in range(ROUNDS):
            order = ("floor", "core", "pack") if r % 2 == 0 else ("pack", "core", "floor")
            for who in order:
                tag = f"{who}_{subdir}_{sink}{r}"
                assert server.process is not None
                cpu_before = cpu_s(server.process.pid)
                if who == "floor":
                    floor.append(run_floor(paths))
                elif who == "core":
                    spans = run_core(client, core_sets[s * ROUNDS + r], sink, tag)
                    core.append(per_image_s(spans))
                    core_gaps += gaps_ms(spans)
                else:
                    spans = run_pack(client, server.input_dir / subdir, sink, tag)
                    assert len(spans) == count, f"the pack ran {len(spans)} prompts for {count} images"
                    pack.append(per_image_s(spans))
                    pack_gaps += gaps_ms(spans)
                    pack_exec += [b - a for a, b in spans]
                if who != "floor":
                    cpu[who].append((cpu_s(server.process.pid) - cpu_before) / count)
        row = {"set": label, "sink": sink, "images": count,
               "floor_s": statistics.median(floor), "core_s": statistics.median(core),
               "pack_s": statistics.median(pack),
               "pack_over_floor_runs": [p / f for p, f in zip(pack, floor, strict=True)],
               "pack_over_core_runs": [p / c for p, c in zip(pack, core, strict=True)],
               "pack_gap_median_ms": statistics.median(pack_gaps),
               "core_gap_median_ms": statistics.median(core_gaps),
               "pack_prompt_median_ms": statistics.median(pack_exec),
               "core_cpu_s": statistics.median(cpu["core"]), "pack_cpu_s": statistics.median(cpu["pack"])}
        row["pack_over_floor"] = row["pack_s"] / row["floor_s"]
        row["pack_over_core"] = row["pack_s"] / row["core_s"]
        rows.append(row)
    return rows


def print_rows(version: str, rows: list[dict]) -> None:
    print(f"\nComfyUI {version} on CPU: seconds per image, median of {ROUNDS} interleaved rounds "
          "(ratios of each round in brackets)")
    print("| images | sink | floor | core | pack | pack / floor | pack / core | pack gap / prompt | core gap "
          "| server CPU per image, core / pack |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        spread_f = ", ".join(f"{x:.2f}" for x in r["pack_over_floor_runs"])
        spread_c = ", ".join(f"{x:.2f}" for x in r["pack_over_core_runs"])
        print(f"| {r['images']} x {r['set']} | {r['sink']} | {r['floor_s'] * 1000:.1f} ms | "
              f"{r['core_s'] * 1000:.1f} ms | {r['pack_s'] * 1000:.1f} ms | **{r['pack_over_floor']:.2f}** "
              f"({spread_f}) | **{r['pack_over_core']:.2f}** ({spread_c}) | "
              f"{r['pack_gap_median_ms']:.1f} / {r['pack_prompt_median_ms']:.1f} ms | "
              f"{r['core_gap_median_ms']:.1f} ms | {r['core_cpu_s'] * 1000:.1f} / {r['pack_cpu_s'] * 1000:.1f} ms |")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp) / "base", with_fixture_pack=True).start()
        client = ComfyClient(server.url, str(uuid.uuid4()))
        try:
            version = str(client.get("/system_stats")["system"].get("comfyui_version", "unknown"))
            rows = []
            for label, kind, size, count in SETS:
                if ONLY and ONLY not in label:
                    continue
                rows += measure_set(server, client, label, kind, size, count)
            memory = memory_run(server, client) if MEMORY_IMAGES else None
        finally:
            server.stop()
    print_rows(version, rows)
    if memory:
        print(f"\nServer memory over a {memory['images']}-image batch (64x64 PNGs, loader -> Batch Image Saver): "
              f"RSS {memory['rss_at_10%_mb']:.0f} MiB at 10%, {memory['rss_at_end_mb']:.0f} MiB at the end, "
              f"max {memory['max_rss_mb']:.0f} MiB")
    write_results(f"e2e-{version}", {"version": version, "rows": rows, "memory": memory})


if __name__ == "__main__":
    main()
