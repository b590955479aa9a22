"""The pass file of a shared job: which images the pass holds, and what it was made from.

A job's folder is named after the shared_job name alone, so every server that uses one name
meets in one folder, whatever it points at. The pass says what it was made from (the loader's
filter, sort and subfolder settings, the creator's folder and a sample of its files' names and
sizes), and a server whose own folder or settings differ is refused with a message that names
both, instead of working through another folder's list or listing the folder twice. The folder
is recognised by its files, not its path: servers mount one share under different paths.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from ..file_listing import ImageEntry
from .files import Publisher, read_record

PASS_FILE = re.compile(r"^pass-(\d{6,})\.json$")
SAMPLE = 16  # files whose name and size identify the folder (spread over the list)


@dataclass(frozen=True)
class Pass:
    """One pass over the folder: every server in it works on these entries, by index."""

    pass_id: str
    number: int
    entries: list[ImageEntry]
    start_index: int
    created_by: str
    folder: str  # this pass's claims
    made_from: dict[str, Any] = field(default_factory=dict)  # directory, settings, sample (see made_from)


def made_from(directory: str, settings: dict[str, Any], entries: list[ImageEntry]) -> dict[str, Any]:
    """What a pass is made from: the folder (path, and a sample of names and sizes) and the settings."""
    picks = sorted({i * len(entries) // SAMPLE for i in range(SAMPLE)}) if entries else []
    sample = [[entries[i].rel_path, _size(directory, entries[i].rel_path)] for i in picks]
    return {"directory": directory, "settings": settings, "sample": sample}


def _size(directory: str, rel_path: str) -> int:
    try:
        return os.stat(os.path.join(directory, *rel_path.split("/"))).st_size
    except OSError:
        return -1


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in settings.items())


def refusal(job_name: str, p: Pass, directory: str, settings: dict[str, Any]) -> str | None:
    """Why this server (directory, settings) may not join pass p; None when it may. A pass from
    an older version says nothing about its origin: joined as before."""
    theirs = p.made_from
    if not theirs:
        return None
    other_settings = theirs.get("settings", {}) != settings
    sample = theirs.get("sample") or []
    same_files = sum(1 for rel, size in sample if _size(directory, rel) == size)
    other_folder = bool(sample) and same_files * 2 < len(sample)
    if not (other_settings or other_folder):
        return None
    what = " and ".join(w for w, differs in (("another folder", other_folder), ("other settings", other_settings))
                        if differs)
    return (f"The shared job '{job_name}' is running on {what}: its pass was made from "
            f"'{theirs.get('directory', '?')}' ({_settings_text(theirs.get('settings', {}))}) by "
            f"{p.created_by}; this loader has '{directory}' ({_settings_text(settings)}). Give this loader "
            "another shared_job name, or the same folder and settings (or Reset the job to start over).")


def latest_number(job_folder: str) -> int:
    numbers = [int(m.group(1)) for m in map(PASS_FILE.match, os.listdir(job_folder)) if m]
    return max(numbers, default=0)


def read_pass(job_folder: str, number: int) -> Pass | None:
    """The pass file number; None while it is not readable (being written without hard links)."""
    record = read_record(os.path.join(job_folder, f"pass-{number:06d}.json"))
    data = record.data if record is not None else {}
    if "files" not in data:
        return None
    entries = [ImageEntry(rel, float(mtime)) for rel, mtime in data["files"]]
    return Pass(data["pass_id"], number, entries, int(data["start_index"]), data["created_by"],
                os.path.join(job_folder, data["data_folder"]), data.get("made_from") or {})


def create_pass(job_folder: str, number: int, entries: list[ImageEntry], start_index: int, publisher: Publisher,
                origin: dict[str, Any]) -> Pass | None:
    """Publish pass number (exclusively); None when another server created it first."""
    nonce = secrets.token_hex(4)
    data_folder = f"pass-{number:06d}-{nonce}"
    for sub in ("claims", "done", "skipped"):
        os.makedirs(os.path.join(job_folder, data_folder, sub))
    record = {"pass_id": f"{number}-{nonce}", "start_index": start_index, "created_by": publisher.owner,
              "created_at": time.time(), "data_folder": data_folder, "made_from": origin,
              "files": [[e.rel_path, e.mtime] for e in entries]}
    if publisher.publish(os.path.join(job_folder, f"pass-{number:06d}.json"), record):
        return Pass(record["pass_id"], number, entries, start_index, publisher.owner,
                    os.path.join(job_folder, data_folder), origin)
    shutil.rmtree(os.path.join(job_folder, data_folder), ignore_errors=True)  # lost the race
    return None
