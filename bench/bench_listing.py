"""Listing cost per run on a folder of 100,000 files: this pack's snapshot vs a fresh scan per run.

Per run, this pack does two things that touch the folder:
  validation  VALIDATE_INPUTS on every queued prompt: stops at the first matching file
  snapshot    the batch's file list, kept in memory (and on disk) since the batch started
A loader that rescans per run (as WAS and others do) pays list_images every time.

Run: scripts/bench.sh listing   (BENCH_FILES=100000 by default)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench_common import load_pack, per_call_ms, write_results  # first: puts tests/ on the path
from harness import default_comfyui_dir

N_FILES = int(os.environ.get("BENCH_FILES", "100000"))
RUNS = 200


def main() -> None:
    sys.path.insert(0, str(default_comfyui_dir()))  # folder_paths, for the validation code path
    pack = load_pack()
    from batch_image_processing.nodes.batch_image_loader import folder_problem
    from batch_image_processing.utils.batch.batch import Batch
    from batch_image_processing.utils.batch.controller import BatchController
    from batch_image_processing.utils.batch.state import BatchSettings, StateStore
    from batch_image_processing.utils.file_listing import FileMatcher, list_images

    assert pack is not None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i in range(N_FILES):
            (folder / f"frame_{i}.png").touch()
        matcher = FileMatcher("All Images")
        start = time.perf_counter()
        entries = list_images(str(folder), matcher, False, "Name (natural)")
        first_scan = (time.perf_counter() - start) * 1000
        assert len(entries) == N_FILES

        controller = BatchController(store_factory=lambda: StateStore(str(Path(tmp) / "state")))
        settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)")
        start = time.perf_counter()
        Batch.new_pass(settings, 0, controller.store).save(controller.store)  # first run: scan + snapshot
        batch_start = (time.perf_counter() - start) * 1000

        def ours_per_run() -> None:
            # A new batch's validation scans (stops at the first match); a running one's skips it.
            assert folder_problem(str(folder), "All Images", "", False, "Name (natural)") is None
            assert controller._batch(settings) is not None

        ours = per_call_ms(ours_per_run, RUNS)
        validation = per_call_ms(
            lambda: folder_problem(str(folder), "All Images", "", False, "Name (natural)"), RUNS)
        fresh = per_call_ms(lambda: list_images(str(folder), matcher, False, "Name (natural)"), 5)
        controller2 = BatchController(store_factory=lambda: StateStore(str(Path(tmp) / "state")))
        start = time.perf_counter()
        controller2._batch(settings)  # after a restart: state and snapshot read back from disk
        reload_ms = (time.perf_counter() - start) * 1000

    rows = {
        "files": N_FILES,
        "first scan (list + natural sort), ms": first_scan,
        "batch start (scan + snapshot written), ms": batch_start,
        "snapshot read back after a restart, ms": reload_ms,
        "ours per run (validation + snapshot), ms": ours,
        "  of which validation, ms": validation,
        "fresh scan per run, ms": fresh,
    }
    print(f"\nListing a folder of {N_FILES:,} files")
    print("| measure | value |\n|---|---|")
    for key, value in rows.items():
        print(f"| {key} | {value:,.3f} |" if isinstance(value, float) else f"| {key} | {value:,} |")
    print(f"| fresh scan / ours per run | {fresh / ours:,.0f}x |")
    write_results("listing", rows)


if __name__ == "__main__":
    main()
