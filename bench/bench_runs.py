"""images_per_run (issue 18), side by side in one run on this machine, null workflow (loader ->
a test node that only reads the IMAGE's shape), time per image from ComfyUI's own /history
timestamps (end of the last prompt - start of the first, over the images):

  256 px PNG     core LoadImage posted N times | pack K = 1 | pack K = 16 | Pillow decode floor (1 thread)
                 | pack K = 16 with decoding made free (the bound: ComfyUI's per-prompt work and the pack's)
  2048 px JPEG   pack K = 1 | pack K = 8 | decode floor
  1024 px PNG    pack K = 1 | pack K = 4
  shared_job     near-zero work (64 px PNGs): 3 servers K = 16 vs 1 server K = 1 (no shared_job)

Rounds are interleaved (BENCH_RUNS_ROUNDS, default 2) and medians reported, with the issue's
targets and whether they are met.

Run: scripts/bench.sh runs
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench_common import write_results  # first: puts tests/ on the path
from bench_e2e import core_names, make_folder, per_image_s, run_core, run_floor, sink_node, timeline
from harness import ComfyClient, ComfyServer

ROUNDS = int(os.environ.get("BENCH_RUNS_ROUNDS", "2"))
SHARED_IMAGES = int(os.environ.get("BENCH_RUNS_SHARED_IMAGES", "480"))
ONLY = os.environ.get("BENCH_RUNS_ONLY", "")  # e.g. "JPEG": only the cases whose label contains it


CASES = (  # label, file kind, size, images, images_per_run values, with core LoadImage, K with free decoding
    ("256 px PNG", "png", 256, 160, (1, 16), True, 16),
    ("2048 px JPEG", "jpg", 2048, 32, (1, 8), False, 0),
    ("1024 px PNG", "png", 1024, 24, (1, 4), False, 0),
)


def loader(folder: Path, k: int, job: str = "") -> dict:
    return {"class_type": "BatchImageLoader", "inputs": {
        "directory": str(folder), "filter_preset": "All Images", "iteration_mode": "Reset",
        "error_handling": "Stop on error", "images_per_run": k, "shared_job": job}}


def wait_done(client: ComfyClient, folder: Path) -> None:
    """Until no batch on folder runs (an empty queue alone can be a gap between two of its prompts
    on a machine loaded by other work), then until the queue is idle."""
    running = True
    while running:
        client.wait_idle(timeout=3600, quiet_for=1.0)
        rows = client.get("/batch_image_processing/status")["batches"]
        running = any(r["directory"] == str(folder) and r["state"] == "running" for r in rows)


def run_pack(client: ComfyClient, folder: Path, k: int, count: int) -> float:
    """Seconds per image of one pass of the pack over folder with images_per_run k."""
    before = set(client.history())
    client.queue_prompt({"1": loader(folder, k), "2": sink_node("null", ["1", 0], "")})
    wait_done(client, folder)
    spans = timeline(client, [pid for pid in client.history() if pid not in before])
    assert len(spans) >= -(-count // k), f"{len(spans)} prompts for {count} images in runs of {k}"
    return per_image_s(spans) * len(spans) / count


def run_pack_free(client: ComfyClient, folder: Path, k: int, count: int) -> float:
    """Seconds per image of a pass whose decoding costs nothing (the test pack's BIPTestFreeDecoding
    hands out the pixels the pass before decoded): what ComfyUI's per-prompt work and the pack's
    own leave, the bound of any faster decoding."""
    def free(enabled: bool) -> None:
        client.queue_prompt({"1": {"class_type": "BIPTestFreeDecoding", "inputs": {"enabled": enabled}}})
        client.wait_idle(timeout=600, quiet_for=0.5)

    free(True)
    try:
        run_pack(client, folder, k, count)  # decodes and remembers every image
        return run_pack(client, folder, k, count)
    finally:
        free(False)


def measure(server: ComfyServer, client: ComfyClient, kind: str, size: int, count: int, ks: tuple[int, ...],
            core: bool, free_k: int) -> dict[str, float]:
    subdir = f"{kind}{size}"
    paths = make_folder(server.input_dir / subdir, kind, size, count, seed=size)
    core_sets = [core_names(server, paths, subdir, r) for r in range(ROUNDS)] if core else []
    time.sleep(2.1)  # files older than the prefetch's racy window, as in any real folder
    times: dict[str, list[float]] = {}
    for r in range(ROUNDS):
        order = ["floor", *(["core"] if core else []), *(f"K={k}" for k in ks)]
        order += [f"K={free_k} free"] if free_k else []
        for who in order if r % 2 == 0 else order[::-1]:
            if who == "floor":
                value = run_floor(paths)
            elif who.endswith("free"):
                value = run_pack_free(client, server.input_dir / subdir, free_k, count)
            elif who == "core":
                value = per_image_s(run_core(client, core_sets[r], "null", ""))
            else:
                value = run_pack(client, server.input_dir / subdir, int(who[2:]), count)
            times.setdefault(who, []).append(value)
    return {who: statistics.median(v) for who, v in times.items()}


def shared_span(clients: list[ComfyClient], folder: Path, k: int, job: str) -> float:
    """Seconds from the first prompt's start to the last one's end over all servers, for one pass."""
    before = [set(c.history()) for c in clients]
    for c in clients:
        c.queue_prompt({"1": loader(folder, k, job), "2": sink_node("null", ["1", 0], "")})
    for c in clients:
        wait_done(c, folder)
    spans = [s for c, old in zip(clients, before, strict=True)
             for s in timeline(c, [pid for pid in c.history() if pid not in old])]
    return (max(e for _, e in spans) - min(s for s, _ in spans)) / 1000


def main() -> None:
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        server = ComfyServer(base, with_fixture_pack=True).start()
        client = ComfyClient(server.url, str(uuid.uuid4()))
        others: list[ComfyServer] = []
        try:
            version = str(client.get("/system_stats")["system"].get("comfyui_version", "unknown"))
            for label, kind, size, count, ks, core, free_k in CASES:
                if ONLY in label:
                    rows[label] = measure(server, client, kind, size, count, ks, core, free_k)
            if ONLY not in "shared_job":
                return report(version, rows)
            others = [ComfyServer(base, with_fixture_pack=True, name=f"server{i}").start() for i in (1, 2)]
            clients = [client] + [ComfyClient(s.url) for s in others]
            folder = server.input_dir / "shared"
            make_folder(folder, "png", 64, SHARED_IMAGES, seed=3)
            time.sleep(2.1)
            one, three = [], []
            for r in range(ROUNDS):
                one.append(shared_span(clients[:1], folder, 1, ""))
                three.append(shared_span(clients, folder, 16, f"runs{r}"))
            rows["shared_job"] = {"1 server K=1": statistics.median(one), "3 servers K=16": statistics.median(three)}
        finally:
            for s in [server, *others]:
                s.stop()
    report(version, rows)


def report(version: str, rows: dict[str, dict[str, float]]) -> None:
    write_results(f"runs-{version}", {"version": version, "cores": os.cpu_count(), "rows": rows})
    print(f"\nComfyUI {version}, {os.cpu_count()} cores, null workflow: ms per image, median of {ROUNDS} rounds")
    for label, row in rows.items():
        unit = (lambda v: f"{v:.2f} s") if label == "shared_job" else (lambda v: f"{v * 1000:.2f} ms")
        print(f"| {label} | " + " | ".join(f"{who}: {unit(v)}" for who, v in row.items()) + " |")
    targets = [  # the issue's: (what, case, measured, against, limit)
        ("256 px PNG: K=16 <= 0.4 x core", "256 px PNG", "K=16", "core", 0.4),
        ("256 px PNG: K=16 <= 1.5 x decode floor", "256 px PNG", "K=16", "floor", 1.5),
        ("256 px PNG: K=16, decoding free (the bound), <= 1.5 x floor", "256 px PNG", "K=16 free", "floor", 1.5),
        ("2048 px JPEG: K=8 <= 0.75 x decode floor", "2048 px JPEG", "K=8", "floor", 0.75),
        ("1024 px PNG: K=4 <= K=1", "1024 px PNG", "K=4", "K=1", 1.0),
        ("shared_job: 3 servers K=16 <= 1 server K=1", "shared_job", "3 servers K=16", "1 server K=1", 1.0),
    ]
    print("\n| target | ratio | met |\n|---|---|---|")
    for what, case, measured, against, limit in targets:
        if case in rows:
            ratio = rows[case][measured] / rows[case][against]
            print(f"| {what} | {ratio:.2f} | {'yes' if ratio <= limit else 'NO'} |")


if __name__ == "__main__":
    main()
