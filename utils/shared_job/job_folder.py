"""Where a shared job keeps its files, what it is called, and how long its leases last.

The job's name comes from the loader's shared_job and the settings that decide what the folder
lists, never from the folder's path: servers mount the same folder under different paths.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from .files import unique_name

LEASE_ENV = "BATCH_IMAGE_LEASE_S"
DEFAULT_LEASE_S = 60.0
JOBS_FOLDER = ".batch_image_processing"  # hidden: the loader's listing skips it
FOLDER_SETTING = "shared_job_folder"  # the loader setting that moves job folders elsewhere


class SharedFolderError(RuntimeError):
    """The job folder cannot be written; the message is meant for the user."""


class ClaimsFolderError(RuntimeError):
    """The claims folder failed while a batch used it (read-only, full, unreachable): the chain
    stops with this message, which names the folder and the error."""

    def __init__(self, folder: str, exc: OSError) -> None:
        self.folder, self.error = folder, exc
        super().__init__(f"the shared job's claims folder '{folder}' failed: {exc.strerror or exc}"
                         f"{f' ({exc.filename})' if exc.filename else ''}. Fix the folder (or set "
                         f"'{FOLDER_SETTING}' to one every server can write), then press Queue to go on.")


class JobStoppedError(RuntimeError):
    """Some server asked every server to stop the shared batch; .record says who, why, which file."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        where = f" ({record['file']})" if record.get("file") else ""
        super().__init__(f"the shared batch was stopped by {record.get('by', 'another server')}: "
                         f"{record.get('reason') or 'stop requested'}{where}")


def lease_from_env() -> float:
    """BATCH_IMAGE_LEASE_S, or 60 s: how long a dead server keeps its image before others retake it."""
    try:
        value = float(os.environ.get(LEASE_ENV, ""))
    except ValueError:
        return DEFAULT_LEASE_S
    return value if value > 0 else DEFAULT_LEASE_S


def job_id(shared_job: str) -> str:
    """Folder name of a shared job: its name alone. Servers with one name meet in one folder, and
    one that points at another folder or uses other settings is refused with a message (see
    passes.py) rather than quietly running a job of its own beside the first."""
    name = shared_job.strip()
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:40].strip("_") or "job"
    return f"{slug}-{digest}"


def job_folder(directory: str, job: str, shared_job_folder: str = "") -> str:
    """<directory>/.batch_image_processing/<job>, or <shared_job_folder>/<job> when one is named."""
    base = shared_job_folder.strip() or os.path.join(directory, JOBS_FOLDER)
    return os.path.join(base, job)


def folder_problem(folder: str) -> str | None:
    """Why claims cannot be kept in folder (a user-facing message), or None when they can.
    Tries for real (create the folder and a file): permission bits say nothing for root, NFS or SMB."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".probe-" + unique_name("w"))
        with open(probe, "x", encoding="utf-8"):
            pass
        os.unlink(probe)
        return None
    except OSError as exc:
        return (f"The shared job cannot keep its claims in '{folder}': {exc.strerror or exc}. When the image "
                f"folder is read-only, set '{FOLDER_SETTING}' to a writable folder that every server "
                "taking part can reach.")
