"""Workers for the claim store's multi-process tests and benchmark: importable by a spawned
child (which gets the parent's sys.path, so tests/ is on it)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time

from packload import PACKAGE, REPO_ROOT

if PACKAGE not in sys.modules:
    # A spawned child needs only utils/: an empty package object spares it the import of torch
    # (seconds) that the pack's __init__ (its nodes) would cost.
    _spec = importlib.util.spec_from_file_location(PACKAGE, REPO_ROOT / "__init__.py",
                                                   submodule_search_locations=[str(REPO_ROOT)])
    assert _spec is not None
    sys.modules[PACKAGE] = importlib.util.module_from_spec(_spec)
from batch_image_processing.utils.file_listing import ImageEntry
from batch_image_processing.utils.shared_job.job import SharedJob

__all__ = ["ImageEntry", "SharedJob", "claim_all", "hold_one", "no_listing", "run_process"]


def no_listing() -> list:
    raise AssertionError("the pass must exist already: a worker never lists the folder")


def run_worker(folder: str, lease_s: float, log_path: str, seconds: float, pause_every: int, pause_s: float,
               deadline: float) -> None:
    """Claim, "process" (a few ms, or every pause_every-th image a freeze of pause_s with no renewal),
    then complete, until the pass is complete. One JSON line per image in log_path."""
    frozen = pause_every > 0
    job = SharedJob(folder, lease_s=lease_s, auto_renew=not frozen)
    job.open_pass(no_listing)
    taken = 0
    with open(log_path, "a", encoding="utf-8") as log:
        while time.time() < deadline:
            claim = job.claim_next()
            if claim is None:
                if job.is_complete():
                    break
                time.sleep(0.005)
                continue
            taken += 1
            start = time.time()
            paused = frozen and taken % pause_every == 0
            time.sleep(pause_s if paused else seconds)
            renewed = job.renew(claim.index)
            won = job.complete(claim.index, "done")
            log.write(json.dumps({"index": claim.index, "owner": job.owner, "start": start, "end": time.time(),
                                  "paused": paused, "renew": renewed, "won": won}) + "\n")
    job.close()


def run_process(folder: str, lease_s: float, log_dir: str, threads: int, seconds: float, pause_every: int,
                pause_s: float, deadline: float, barrier: object = None) -> None:
    """Several workers in this process, one thread (and one SharedJob, one owner) each; all
    processes start together at the barrier (a spawned one takes a second to import)."""
    if barrier is not None:
        barrier.wait(timeout=60)  # type: ignore[attr-defined]
    workers = [
        threading.Thread(target=run_worker, args=(folder, lease_s, os.path.join(log_dir, f"{os.getpid()}-{n}.jsonl"),
                                                  seconds, pause_every if n == 0 else 0, pause_s, deadline))
        for n in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def claim_all(folder: str, lease_s: float) -> int:
    """Benchmark worker: claim and complete until nothing is left; returns how many it did."""
    job = SharedJob(folder, lease_s=lease_s)
    job.open_pass(no_listing)
    count = 0
    while True:
        claim = job.claim_next()
        if claim is None:
            if job.is_complete():
                break
            time.sleep(0.001)
            continue
        job.complete(claim.index, "done")
        count += 1
    job.close()
    return count


def hold_one(folder: str, lease_s: float, queue: object) -> None:
    """A server that claims one image, keeps renewing it, and waits to be killed (kill -9 test)."""
    job = SharedJob(folder, lease_s=lease_s)
    job.open_pass(no_listing)
    claim = job.claim_next()
    queue.put(claim.index if claim else None)  # type: ignore[attr-defined]
    while True:
        time.sleep(1)
