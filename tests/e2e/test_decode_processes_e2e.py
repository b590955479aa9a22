"""The decode worker processes in a real ComfyUI (utils/images/decode_processes.py): a run of small
images is decoded by them, and a worker killed or frozen in the middle of a batch loses nothing."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import imagefiles as img
import pytest
from harness import ComfyClient, ComfyServer
from helpers import batch_status
from test_images_per_run import assert_inverted, results, run_workflow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sends POSIX signals")


def workers_of(server: ComfyServer) -> list[int]:
    """Process ids of the server's decode workers (its children running decode_worker)."""
    assert server.process is not None
    pids = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"decode_worker" in cmdline:
                pids.append(int(pid))
    return pids


def test_a_worker_killed_and_one_frozen_mid_batch_lose_no_image(own_server: ComfyServer, tmp_path: Path) -> None:
    own_server.start()
    client = ComfyClient(own_server.url)
    folder = own_server.input_dir / "small"
    folder.mkdir()
    pixels = {f"i{n:03d}.png": img.write_png(folder / f"i{n:03d}.png", 32, 24, seed=n) for n in range(80)}
    time.sleep(2.1)  # older than the prefetch's racy window, as files in a real folder are
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(folder, out, 4, sleep=0.25))  # 20 runs: about 5 s
    deadline = time.monotonic() + 60
    while len(workers := workers_of(own_server)) < 2:  # started by the batch's second run
        assert time.monotonic() < deadline, "no decode workers started"
        time.sleep(0.05)
    try:
        time.sleep(1.5)  # both have started and taken images
        os.kill(workers[0], signal.SIGKILL)
        os.kill(workers[1], signal.SIGSTOP)  # frozen: taken for hung after 30 s and killed
        client.wait_idle(timeout=300)
        row = batch_status(client, folder)[0]
        assert (row["state"], row["done"]) == ("complete", len(pixels))
        assert results(out) == sorted(pixels), "every input exactly one result"
        for name, source in pixels.items():
            assert_inverted(out / name, source)
        assert not alive(workers[1]), "the frozen worker was left stopped"
        assert "has not answered for 30 s" in own_server.log_text()
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        return b"decode_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_the_workers_end_with_comfyui(own_server: ComfyServer) -> None:
    own_server.start()
    client = ComfyClient(own_server.url)
    folder = own_server.input_dir / "small"
    folder.mkdir()
    for n in range(12):
        img.write_png(folder / f"i{n:02d}.png", 16, 12, seed=n)
    time.sleep(2.1)
    client.queue_prompt(run_workflow(folder, own_server.input_dir.parent / "out", 4))
    client.wait_idle(timeout=120)
    workers = workers_of(own_server)
    assert workers, "a run of small images after the first is decoded by the workers"
    assert own_server.process is not None
    os.kill(own_server.process.pid, signal.SIGKILL)  # no atexit: the workers see their stdin close
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a decode worker outlived ComfyUI"
        time.sleep(0.1)
