"""Where a shared job keeps its files, what it is called, and how long its leases last.

The job's name comes from the loader's shared_job and the settings that decide what the folder
lists, never from the folder's path: servers mount the same folder under different paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from .files import unique_name

LEASE_ENV = "BATCH_IMAGE_LEASE_S"
DEFAULT_LEASE_S = 60.0
JOBS_FOLDER = ".batch_image_processing"  # hidden: the loader's listing skips it
FOLDER_SETTING = "shared_job_folder"  # the loader setting that moves job folders elsewhere


class SharedFolderError(RuntimeError):
    """The job folder cannot be written; the message is meant for the user."""


def lease_from_env() -> float:
    """BATCH_IMAGE_LEASE_S, or 60 s: how long a dead server keeps its image before others retake it."""
    try:
        value = float(os.environ.get(LEASE_ENV, ""))
    except ValueError:
        return DEFAULT_LEASE_S
    return value if value > 0 else DEFAULT_LEASE_S


def job_id(shared_job: str, filter_preset: str, custom_pattern: str, include_subfolders: bool, sort_by: str) -> str:
    """Folder name of a shared job: the same on every server that lists the folder alike.
    The directory is left out on purpose: servers mount the same folder under different paths."""
    settings = [shared_job.strip(), filter_preset, custom_pattern.strip() if filter_preset == "Custom" else "",
                bool(include_subfolders), sort_by]
    digest = hashlib.sha1(json.dumps(settings).encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", shared_job.strip())[:40].strip("_") or "job"
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
