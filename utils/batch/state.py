"""A batch's position, persisted so that a crash or a restart of ComfyUI loses nothing.

Each batch has a small JSON file (rewritten once per image, atomically) and a snapshot of
its file list (written once, when the batch starts) so indexes mean the same files after a
restart. Files live in ComfyUI's user folder: the temp folder is wiped at every start, and
the pack's own folder is replaced on update.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import log
from ..file_listing import ImageEntry

RUNNING, STOPPED, COMPLETE = "running", "stopped", "complete"


@dataclass(frozen=True)
class BatchSettings:
    """What identifies a batch: the loader node and what it lists."""

    node_id: str
    directory: str
    filter_preset: str
    custom_pattern: str
    include_subfolders: bool
    sort_by: str
    workflow_id: str = ""  # which workflow the loader belongs to (see batch_identity)
    shared_job: str = ""  # not empty: several servers share the batch (see shared_batch)
    shared_job_folder: str = ""  # where the shared job keeps its claims ("": inside directory)

    @property
    def listing(self) -> tuple[str, str, str, bool, str]:
        """What the folder listing depends on (not which node or workflow asks)."""
        return self.directory, self.filter_preset, self.custom_pattern, self.include_subfolders, self.sort_by

    @functools.cached_property
    def key(self) -> str:
        """File-name-safe id; two loaders (or one loader on two folders) never share it. Cached:
        asked for several times per image, and the settings never change."""
        digest = hashlib.sha1(json.dumps(dataclasses.astuple(self)).encode("utf-8")).hexdigest()[:12]
        return f"node{re.sub(r'[^A-Za-z0-9]+', '_', self.node_id)}-{digest}"


@dataclass
class BatchState:
    """Progress of one batch. next_index: images before it are done or skipped."""

    key: str
    node_id: str
    directory: str
    total: int
    start_index: int = 0
    next_index: int = 0
    status: str = RUNNING
    done: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    current_file: str = ""
    last_error: str = ""  # why the batch stopped on an error ("" when it did not fail)
    stop_reason: str = ""  # why a user stopped it: Cancel, Stop batch, Clear queue, ...
    workflow_id: str = ""
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    # Where this run of the batch began (a new pass, or a resume): the base of rate and ETA.
    run_started_at: float = field(default_factory=time.time)
    run_start_count: int = 0

    @property
    def processed(self) -> int:
        """Images finished (done or skipped) since the batch started."""
        return self.done + len(self.skipped)

    def begin_run(self) -> None:
        self.run_started_at, self.run_start_count = time.time(), self.processed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def problem_with(cls, data: object) -> str | None:
        """Why data is not a state this pack wrote (a foreign or damaged file), or None."""
        if not isinstance(data, dict):
            return f"a JSON {type(data).__name__}, not an object"
        for name in ("key", "node_id", "directory", "total"):
            if name not in data:
                return f"no {name!r}"
        for f in dataclasses.fields(cls):
            if f.name in data and not _is_type(data[f.name], str(f.type)):
                return f"{f.name!r} is {json.dumps(data[f.name])[:40]}, not {f.type}"
        skipped = data.get("skipped", [])
        if not all(isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("reason"), str)
                   for s in skipped):
            return "'skipped' is not a list of {file, reason}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_type(value: object, annotation: str) -> bool:
    """value fits a BatchState field annotation (str, int, float, float | None, list[...])."""
    if isinstance(value, bool):
        return False
    kinds = {"str": str, "int": int, "float": (int, float)}
    if annotation.startswith("list"):
        return isinstance(value, list)
    if annotation.endswith("| None") and value is None:
        return True
    kind = kinds.get(annotation.split("|")[0].strip())
    return kind is not None and isinstance(value, kind)


def atomic_write_text(path: str, text: str) -> None:
    """Write through a temporary file in the same folder, then rename over the target."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class StateStore:
    """Reads and writes batch states and file snapshots under one folder; thread-safe."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # foreign or damaged files already reported once

    def _skip(self, path: str, why: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("ignoring '%s': not a batch state of this pack (%s). Delete or move it if you do not "
                        "need it; Reset on the loader also removes the pack's own files.", path, why)

    def _path(self, key: str, suffix: str) -> str:
        return os.path.join(self.folder, f"{key}{suffix}")

    def load(self, key: str) -> BatchState | None:
        """The state saved under key; None when there is none, or when the file is not one of ours."""
        path = self._path(key, ".json")
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # unreadable, not JSON, or nested too deeply
            self._skip(path, f"cannot be read: {type(exc).__name__}")
            return None
        why = BatchState.problem_with(data)
        if why is None and data["key"] != key:
            why = f"its key {data['key']!r} is not its file name"
        if why is not None:
            self._skip(path, why)
            return None
        return BatchState.from_dict(data)

    def save(self, state: BatchState) -> None:
        state.updated_at = time.time()
        text = json.dumps(state.to_dict(), indent=1)
        with self._lock:
            os.makedirs(self.folder, exist_ok=True)
            atomic_write_text(self._path(state.key, ".json"), text)

    def delete(self, key: str) -> bool:
        found = False
        for suffix in (".json", ".files.json"):
            try:
                os.unlink(self._path(key, suffix))
                found = True
            except FileNotFoundError:
                pass
        return found

    def save_snapshot(self, key: str, entries: list[ImageEntry]) -> None:
        text = json.dumps([[e.rel_path, e.mtime] for e in entries])
        with self._lock:
            os.makedirs(self.folder, exist_ok=True)
            atomic_write_text(self._path(key, ".files.json"), text)

    def load_snapshot(self, key: str) -> list[ImageEntry] | None:
        try:
            with open(self._path(key, ".files.json"), encoding="utf-8") as fh:
                data = json.load(fh)
            entries = [ImageEntry(rel, float(mtime)) for rel, mtime in data]
        except (OSError, ValueError, TypeError, RecursionError):
            return None
        return entries if all(isinstance(e.rel_path, str) for e in entries) else None

    def all_states(self) -> list[BatchState]:
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".json") and not n.endswith(".files.json"))
        except OSError:
            return []
        states = [self.load(n[: -len(".json")]) for n in names]
        return [s for s in states if s is not None]
