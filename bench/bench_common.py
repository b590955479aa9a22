"""Shared by the benchmarks: the test helpers on the path, the pack imported like ComfyUI does,
and results stored as JSON."""

from __future__ import annotations

import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"
sys.path.insert(0, str(REPO_ROOT / "tests"))

import packload  # noqa: E402


def load_pack() -> ModuleType:
    """The pack as batch_image_processing, with the submodules the benchmarks call."""
    module = packload.load_pack()
    for sub in ("utils.images.decode", "utils.images.tensors", "utils.file_listing", "utils.batch.state"):
        importlib.import_module(f"{packload.PACKAGE}.{sub}")
    return module


def per_call_ms(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of one call of fn over runs calls."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def write_results(kind: str, rows: object) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}.json"
    path.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        "rows": rows,
    }, indent=1))
    print(f"\n(results: {path})")
    return path
