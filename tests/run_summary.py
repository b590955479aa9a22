"""Which ComfyUI and frontend each pytest run of scripts/test.sh tested, and the closing summary.

scripts/test.sh runs pytest once per ComfyUI version (each from its own venv); every run appends
one JSON line (label, servers seen, counts) to the file named by BIP_RUN_SUMMARY, and
`python tests/run_summary.py FILE` prints one line per run and the total, so the end of the
output says which versions ran. Exits 1 when a run failed or a version ran no test.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# "ComfyUI 0.33.0 + frontend 1.49.6" for every server a run started (e2e/conftest.py adds them).
SERVERS: list[str] = []


def frontend_label() -> str:
    """The frontend the servers of this run serve: --front-end-root's build, or the installed package."""
    root = os.environ.get("BIP_FRONT_END_ROOT", "")
    if root:
        name = Path(root).resolve().parent.name  # .cache/frontend-1.58.1/static
        return f"{name.removeprefix('frontend-')} (--front-end-root)" if name.startswith("frontend-") else root
    try:
        return metadata.version("comfyui-frontend-package")
    except metadata.PackageNotFoundError:
        return "unknown"


def record(stats: dict[str, list[Any]]) -> None:
    """Append this run's counts to BIP_RUN_SUMMARY (no-op outside scripts/test.sh)."""
    path = os.environ.get("BIP_RUN_SUMMARY")
    if not path:
        return
    counts = {k: len(stats.get(k, [])) for k in ("passed", "failed", "skipped", "error")}
    line = {"label": os.environ.get("BIP_RUN_LABEL", "tests"), "servers": sorted(set(SERVERS)), **counts}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def summarize(path: str) -> int:
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    total = {k: sum(r[k] for r in runs) for k in ("passed", "failed", "skipped", "error")}
    versions = []
    print()
    for r in runs:
        where = "; ".join(r["servers"]) or "no ComfyUI started"
        versions += [s.split(" + ")[0] for s in r["servers"]]
        print(f"[test] {r['label']}: {r['passed']} passed, {r['failed'] + r['error']} failed, "
              f"{r['skipped']} skipped - {where}")
    print(f"[test] ComfyUI versions tested: {', '.join(dict.fromkeys(versions)) or 'none'}")
    print(f"total: {total['passed']} passed, {total['failed'] + total['error']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] or total["error"] else 0


if __name__ == "__main__":
    sys.exit(summarize(sys.argv[1]))
