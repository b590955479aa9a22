"""Shared by the benchmarks: import the pack like ComfyUI does, and store results as JSON."""

from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"


def load_pack() -> ModuleType:
    """The pack as a package named batch_image_processing (its folder name does not matter)."""
    name = "batch_image_processing"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for sub in ("utils.image_decode", "utils.file_listing", "utils.batch_state"):
        importlib.import_module(f"{name}.{sub}")
    return module


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
