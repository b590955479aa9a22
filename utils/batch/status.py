"""What a user wants to know about a batch, as data for the HTTP route and as one line of text.

"1,234 / 5,000 - beach_001.jpg - 0.8 img/s - about 1 h 20 min left"
"""

from __future__ import annotations

import time
from typing import Any

from ..shared_job.claim_holding import JobGoneError
from .state import COMPLETE, RUNNING, STOPPED, BatchState

RESET_ELSEWHERE = "reset on another server"


def describe_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def rate_per_s(state: BatchState, now: float) -> float | None:
    """Images per second in this run of the batch; None before the first image finished."""
    finished = state.processed - state.run_start_count
    end = state.finished_at if state.finished_at and state.finished_at >= state.run_started_at else now
    elapsed = end - state.run_started_at
    if finished <= 0 or elapsed <= 0:
        return None
    return finished / elapsed


def describe(state: BatchState, running: bool, now: float | None = None, run_images: int = 1) -> dict[str, Any]:
    """Status of one batch. A state saved as running that no prompt carries on is 'stopped'.
    run_images: the images of the run in progress (images_per_run), the first being current_file."""
    now = time.time() if now is None else now
    status = RUNNING if running else (STOPPED if state.status == RUNNING else state.status)
    position = state.next_index - state.start_index
    total = state.total - state.start_index
    rate = rate_per_s(state, now) if status == RUNNING or status == COMPLETE else None
    remaining = max(state.total - state.next_index, 0)
    eta = remaining / rate if rate and status == RUNNING else None
    parts = [f"{position:,} / {total:,}"]
    if status == RUNNING and state.current_file:
        parts.append(state.current_file + (f" and {run_images - 1} more" if run_images > 1 else ""))
    if rate:
        parts.append(f"{rate:.1f} img/s" if rate >= 0.1 else f"{60 * rate:.1f} img/min")
    if eta is not None:
        parts.append(f"about {describe_duration(eta)} left")
    if status == COMPLETE:
        parts.append("done" + (f", {len(state.skipped)} skipped" if state.skipped else ""))
    elif status == STOPPED:
        if state.last_error:
            parts.append(f"stopped: {state.last_error}")
        else:
            parts.append("stopped" + (f" ({state.stop_reason})" if state.stop_reason else ""))
    return {
        "key": state.key,
        "node_id": state.node_id,
        "directory": state.directory,
        "state": status,
        "done": state.done,
        "skipped": len(state.skipped),
        "position": position,
        "total": total,
        "current_file": state.current_file if status == RUNNING else "",
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "rate_per_s": rate,
        "eta_s": eta,
        "last_error": state.last_error,
        "stop_reason": state.stop_reason,
        "text": " - ".join(parts),
    }


def describe_shared(state: BatchState, running: bool, job: Any, now: float | None = None,
                    run_images: int = 1) -> dict[str, Any]:
    """Status of a batch shared by several servers: the shared progress first, then this server's part.

    "120 / 340 shared (3 in progress, 3 servers; 41 here) - beach_001.jpg - 0.8 img/s - ..."
    """
    info = describe(state, running, now, run_images)
    try:
        progress, stop = job.progress(), job.stop_request()
    except JobGoneError:  # its pass was reset: the shared count is gone, say so (not "0 / 30 - done")
        state_now = info["state"] if running else STOPPED
        info.update(state=state_now, position=0, eta_s=None, text=f"{state.done:,} here - {RESET_ELSEWHERE}",
                    shared={"reset": True})
        return info
    except (OSError, RuntimeError):  # no pass opened in this process yet, claims folder failing
        return info
    finished, total = progress["done"] + progress["skipped"], progress["total"]
    head = (f"{finished:,} / {total:,} shared ({progress['claimed']} in progress, {progress['servers']} "
            f"server{'s' if progress['servers'] != 1 else ''}; {state.done:,} here)")
    rate = info["rate_per_s"]
    eta = (total - finished) / (rate * max(1, progress["servers"])) if rate and info["state"] == RUNNING else None
    parts = [p for p in info["text"].split(" - ")[1:] if not p.startswith("about ")]  # this server's ETA
    if eta is not None:
        parts.append(f"about {describe_duration(eta)} left")
    info.update(position=finished, total=total, eta_s=eta, text=" - ".join([head, *parts]),
                shared={**progress, "stop": stop})
    return info
