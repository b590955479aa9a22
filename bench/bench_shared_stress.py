"""A shared job under attack: 5 real ComfyUI servers on one folder, a 2 s lease, and meanwhile
random kill -9 (the server is started again and rejoins), SIGSTOP for longer than the lease
(then SIGCONT) and Clear history, until the shared pass is finished. Then every image must have
exactly one result file (Batch Image Saver, overwrite_mode Add number: a second result would be
img_0007_1.png) and none may be missing.

Run: scripts/bench.sh shared_stress   (BENCH_STRESS_IMAGES=400, BENCH_STRESS_SERVERS=5,
BENCH_STRESS_SEED=17, BENCH_STRESS_SLEEP=0.3 s per image; heavy on a 2-core machine)
"""

from __future__ import annotations

import collections
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from bench_common import write_results  # first: puts tests/ on the path
from harness import ComfyClient, ComfyServer
from PIL import Image

IMAGES = int(os.environ.get("BENCH_STRESS_IMAGES", "400"))
SERVERS = int(os.environ.get("BENCH_STRESS_SERVERS", "5"))
SEED = int(os.environ.get("BENCH_STRESS_SEED", "17"))
SLEEP_S = float(os.environ.get("BENCH_STRESS_SLEEP", "0.3"))
LEASE_S = 2.0


def make_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"img_{i:04d}.png")


def workflow(folder: Path, out: Path) -> dict:
    return {
        "1": {"class_type": "BatchImageLoader", "inputs": {
            "directory": str(folder), "filter_preset": "All Images", "iteration_mode": "Continue",
            "error_handling": "Stop on error", "shared_job": "stress"}},
        "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": SLEEP_S}},
        "3": {"class_type": "BatchImageSaver", "inputs": {
            "images": ["2", 0], "output_directory": str(out), "filename": ["1", 2], "relative_path": ["1", 4]}},
    }


def shared_done(client: ComfyClient, folder: Path) -> int:
    rows = [b for b in client.get("/batch_image_processing/status")["batches"] if b["directory"] == str(folder)]
    return int(rows[0].get("shared", {}).get("done", 0)) if rows else 0


def chaos(servers: list[ComfyServer], clients: list[ComfyClient], folder: Path, prompt: dict,
          rng: random.Random) -> dict[str, int]:
    """Attack every 0.3-1.5 s until a live server reports the pass done; returns how often each
    attack ran. At least two servers stay up and running; a killed one starts again 1-4 s later
    (in the background) and rejoins, a frozen one gets SIGCONT after 2.5-5 s."""
    counts = collections.Counter[str]()
    restarting: dict[int, threading.Thread] = {}
    frozen: dict[int, float] = {}  # server -> when to SIGCONT it
    progress = {"done": 0}

    def restart(i: int, delay: float) -> None:
        time.sleep(delay)
        servers[i].start()
        if progress["done"] < IMAGES * 0.9:  # rejoin (Queue on a finished pass would start a new one)
            clients[i].queue_prompt(prompt)

    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        for i, until in list(frozen.items()):
            if time.monotonic() >= until:
                os.killpg(servers[i].process.pid, signal.SIGCONT)  # type: ignore[union-attr]
                del frozen[i]
        for i, thread in list(restarting.items()):
            if not thread.is_alive():
                del restarting[i]
        up = [i for i in range(len(servers)) if i not in restarting and i not in frozen]
        progress["done"] = max(shared_done(clients[i], folder) for i in up)
        if progress["done"] >= IMAGES:
            break
        time.sleep(rng.uniform(0.3, 1.5))
        action, victim = rng.choice(["kill", "freeze", "clear"]), rng.choice(up)
        process = servers[victim].process
        if action == "kill" and len(up) > 2 and process is not None:
            servers[victim].stop(kill=True)
            restarting[victim] = threading.Thread(target=restart, args=(victim, rng.uniform(1.0, 4.0)))
            restarting[victim].start()
        elif action == "freeze" and len(up) > 2 and process is not None:
            os.killpg(process.pid, signal.SIGSTOP)
            frozen[victim] = time.monotonic() + rng.uniform(LEASE_S + 0.5, 2 * LEASE_S + 1)
        else:
            action = "clear"
            clients[victim].request("POST", "/history", {"clear": True})
        counts[action] += 1
    for i in frozen:
        os.killpg(servers[i].process.pid, signal.SIGCONT)  # type: ignore[union-attr]
    for thread in restarting.values():
        thread.join()
    return dict(counts)


def main() -> None:
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "install"
        servers = [ComfyServer(base, with_fixture_pack=True, name=f"server{i}",
                               env={"BATCH_IMAGE_LEASE_S": str(LEASE_S)}) for i in range(SERVERS)]
        for server in servers:
            server.start()
        clients = [ComfyClient(s.url) for s in servers]
        folder, out = base / "input" / "stress", Path(tmp) / "results"
        make_folder(folder)
        prompt = workflow(folder, out)
        try:
            started = time.monotonic()
            for client in clients:
                client.queue_prompt(prompt)
            attacks = chaos(servers, clients, folder, prompt, rng)
            for client in clients:
                client.wait_idle(timeout=600, quiet_for=2.0)
            seconds = time.monotonic() - started
            files = sorted(p.name for p in out.glob("*.png"))
            logs = "".join(s.log_text() for s in servers)
            states = [b["state"] for c in clients for b in c.get("/batch_image_processing/status")["batches"]
                      if b["directory"] == str(folder)]
        finally:
            for server in servers:
                server.stop()
    expected = {f"img_{i:04d}.png" for i in range(IMAGES)}
    row = {"images": IMAGES, "servers": SERVERS, "lease_s": LEASE_S, "seconds": round(seconds, 1),
           "kills": attacks.get("kill", 0), "freezes": attacks.get("freeze", 0),
           "history_clears": attacks.get("clear", 0), "result_files": len(files),
           "missing": len(expected - set(files)), "extra_files": len(set(files) - expected),
           "writes_fenced": logs.count("not saving the result of"),
           "chains_ended": dict(collections.Counter(states))}
    print(f"\nShared job under attack ({IMAGES} images, {SERVERS} servers, {LEASE_S:.0f} s lease)")
    print("| " + " | ".join(row) + " |\n|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    write_results("shared_stress", [row])
    assert row["missing"] == 0 and row["extra_files"] == 0 and row["result_files"] == IMAGES, row


if __name__ == "__main__":
    main()
