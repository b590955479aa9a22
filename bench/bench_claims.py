"""Shared job claims: what coordination through the folder costs per image.

1. Throughput: 1, 2 and 3 processes (servers) claim and complete every image of one pass,
   side by side in one run (rounds interleaved, medians).
2. claim_next at 10,000 images: in order, behind another server, and as a late joiner.
3. progress(): listing done/, skipped/ and claims/ of a pass of that size.

Run: .cache/venv/bin/python bench/bench_claims.py   (BENCH_CLAIM_IMAGES=2000, BENCH_BIG_IMAGES=10000)
Local disk only: on NFS or SMB every file operation is a round trip to the file server.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_common import per_call_ms, write_results  # first: puts tests/ on the path
from claim_workers import ImageEntry, SharedJob, claim_all, no_listing  # the pack's utils, without torch

IMAGES = int(os.environ.get("BENCH_CLAIM_IMAGES", "2000"))
BIG = int(os.environ.get("BENCH_BIG_IMAGES", "10000"))
ROUNDS = 3
LEASE_S = 60.0


def new_pass(root: Path, name: str, count: int) -> str:
    folder = str(root / name)
    job = SharedJob(folder, lease_s=LEASE_S)
    job.open_pass(lambda: [ImageEntry(f"img_{i:06d}.png", 0.0) for i in range(count)])
    job.close()
    return folder


def throughput(root: Path, name: str, processes: int) -> float:
    """Images per second for `processes` servers on one pass (from all started to all done)."""
    folder = new_pass(root, name, IMAGES)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        pool.map(abs, range(processes))  # the workers are up before the clock starts
        start = time.perf_counter()
        counts = pool.starmap(claim_all, [(folder, LEASE_S)] * processes)
        elapsed = time.perf_counter() - start
    assert sum(counts) == IMAGES, counts
    return IMAGES / elapsed


def claim_costs(root: Path) -> dict[str, float]:
    folder = new_pass(root, "big", BIG)
    a, b = SharedJob(folder, lease_s=LEASE_S), SharedJob(folder, lease_s=LEASE_S)
    for job in (a, b):
        job.open_pass(no_listing)
    rows: dict[str, float] = {}

    def alone() -> None:
        claim = a.claim_next()
        a.complete(claim.index, "done")

    rows["claim_next + complete, one server, ms"] = per_call_ms(alone, 500)
    start = time.perf_counter()
    claim = a.claim_next()
    rows["claim_next alone, ms"] = (time.perf_counter() - start) * 1000
    a.complete(claim.index, "done")

    def behind() -> None:  # b holds the image before a's: a reads b's claim chain and passes it
        held = b.claim_next()
        claim = a.claim_next()
        a.complete(claim.index, "done")
        b.complete(held.index, "done")

    rows["two servers alternating, per image pair, ms"] = per_call_ms(behind, 500)
    for _ in range(BIG * 9 // 10 - 2 * 500 - 501):
        alone()
    joiner = SharedJob(folder, lease_s=LEASE_S)
    start = time.perf_counter()
    joiner.open_pass(no_listing)
    rows[f"late joiner: open_pass ({BIG} files in the pass), ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    claim = joiner.claim_next()
    rows["late joiner: first claim_next (lists done/ once), ms"] = (time.perf_counter() - start) * 1000
    joiner.complete(claim.index, "done")
    rows["late joiner: next claim_next + complete, ms"] = per_call_ms(
        lambda: joiner.complete(joiner.claim_next().index, "done"), 200)
    rows[f"progress() at {a.progress()['done']} done of {BIG}, ms"] = per_call_ms(a.progress, 20)
    for job in (a, b, joiner):
        job.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
        for r in range(ROUNDS):
            for processes in rates:
                rates[processes].append(throughput(root, f"t{r}-{processes}", processes))
        costs = claim_costs(root)
    print(f"\n### Claim + complete throughput, {IMAGES} images, one folder (median of {ROUNDS})\n")
    print("| servers (processes) | images/s | per image |\n|---|---|---|")
    for processes, values in rates.items():
        rate = statistics.median(values)
        print(f"| {processes} | {rate:.0f} | {1000 / rate:.2f} ms |")
    print(f"\n### Per call at {BIG} images\n\n| what | ms |\n|---|---|")
    for what, value in costs.items():
        print(f"| {what} | {value:.2f} |")
    write_results("claims", {"images": IMAGES, "big": BIG, "rates": rates, "costs": costs})


if __name__ == "__main__":
    sys.exit(main())
