"""A batch shared by several servers: its images are handed out by the job folder's claims.

The same Batch object runs a shared batch; only where its next image comes from and where its
progress is recorded differ (utils/shared_job/job.py and utils/shared_job/claim_store.py do the claiming).
This process keeps one SharedJob per job folder, so its claims are renewed while it holds them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import log
from ..file_listing import ImageEntry
from ..shared_job.job import ClaimsFolderError, JobGoneError, JobStoppedError, Pass, SharedFolderError, SharedJob
from ..shared_job.job_folder import FOLDER_SETTING, folder_problem, job_folder, job_id
from .state import BatchSettings

__all__ = ["ClaimsFolderError", "JobGoneError", "JobStoppedError", "SharedFolderError", "call_shared",
           "open_shared_pass", "shared_job_for", "stop_from"]

_jobs: dict[str, SharedJob] = {}
_jobs_lock = threading.Lock()

STOP_ALL = "Stop on all servers was pressed"
GONE = "the shared batch was reset on another server"


def shared_job_for(settings: BatchSettings) -> SharedJob:
    """This process's view of the shared job of settings (one per job folder)."""
    folder = job_folder(settings.directory, job_id(settings.shared_job), settings.shared_job_folder)
    with _jobs_lock:
        if folder not in _jobs:
            _jobs[folder] = SharedJob(folder, name=settings.shared_job)
        return _jobs[folder]


def open_shared_pass(settings: BatchSettings, start_index: int,
                     list_entries: Callable[[], list[ImageEntry]]) -> tuple[SharedJob, Pass]:
    """A press of Queue: lift a stop-all request and join the shared pass (a finished one starts a
    new pass). iteration_mode Reset does not restart a shared pass: every server pressing Queue
    with it would restart the others' work; the Reset button (or route) forgets shared progress."""
    job = shared_job_for(settings)
    problem = folder_problem(job.folder)
    if problem:
        raise SharedFolderError(problem)
    try:
        job.clear_stop()
        return job, job.open_pass(list_entries, start_index, new_pass_if_complete=True,
                                  directory=settings.directory, settings=pass_settings(settings))
    except ValueError as exc:
        raise SharedFolderError(str(exc)) from None
    except ClaimsFolderError as exc:
        raise SharedFolderError(str(exc)) from None
    except OSError as exc:
        raise SharedFolderError(f"The shared job's folder '{job.folder}' cannot be used: {exc.strerror or exc}. "
                                f"Check it, or set '{FOLDER_SETTING}' to a writable folder every server "
                                "can reach.") from None


def pass_settings(settings: BatchSettings) -> dict[str, Any]:
    """The loader settings a shared pass is bound to (a server with others is refused)."""
    return {"filter_preset": settings.filter_preset, "custom_pattern": settings.custom_pattern,
            "include_subfolders": settings.include_subfolders, "sort_by": settings.sort_by}


def call_shared(node_id: str, method: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    """(result, failure) of a claims call that may not stop the image around it: a reset elsewhere
    is only logged; a failing claims folder is returned as failure, for the chain to stop on."""
    try:
        return method(*args), ""
    except ClaimsFolderError as exc:
        log.error("node %s: %s", node_id, exc)
        return None, str(exc)
    except (JobGoneError, OSError) as exc:  # reset on another server
        log.warning("node %s: shared job: %s", node_id, exc)
        return None, ""


def stop_from(exc: Exception) -> tuple[str, str]:
    """(error, stop reason) for a chain stopped or reset on another server, stopped while it waited
    for images held elsewhere, or whose claims folder failed."""
    if isinstance(exc, JobStoppedError):
        record: dict[str, Any] = exc.record
        if record.get("file"):  # Stop on error on some server: everyone shows the error and the file
            return f"{record.get('reason', '')} (on {record.get('by', 'another server')})", ""
        return "", f"{record.get('reason') or STOP_ALL} (by {record.get('by', 'another server')})"
    if isinstance(exc, ClaimsFolderError):
        return str(exc), ""
    return "", GONE if isinstance(exc, JobGoneError) else str(exc)  # else: Stop or Cancel while waiting
