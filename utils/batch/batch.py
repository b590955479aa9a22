"""One batch, its whole life in one object: settings, file list, saved position, the prompt in
flight, the stop request and the browser that runs it.

A batch moves between three phases:

    IDLE ──press──▶ RUNNING ──image done, more to go──▶ QUEUED ──next prompt starts──▶ RUNNING
                        │                                  │
                        └─ last image, error, Stop ──▶ IDLE ◀─ Stop, Cancel, removed from queue

IDLE: no prompt of the batch is running or queued (never started, stopped or complete; the
saved status says which). RUNNING: a prompt of the batch executes its image. QUEUED: the next
image's prompt is being POSTed or waits in ComfyUI's queue. A stop request (Stop, Cancel,
Clear queue) is remembered until the chain ends: a RUNNING image finishes, a QUEUED prompt
never processes its image. The controller holds the lock while it calls these methods.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..file_listing import FileMatcher, ImageEntry, list_images
from ..log import info, warning
from ..saving.output_names import unique_stems
from .shared import ClaimsFolderError, JobGoneError, SharedJob, call_shared, open_shared_pass
from .state import COMPLETE, RUNNING, STOPPED, BatchSettings, BatchState, StateStore
from .status import describe, describe_duration, describe_shared

IDLE, QUEUED = "idle", "queued"  # RUNNING ("running") is shared with the saved status
NEW_PASS = "new pass"  # what a press asks for when there is nothing to resume
# A prompt from the batch's own browser queued this soon after the batch ended is the frontend's
# auto-queue ("Run (Instant)") answering the empty queue (it does so within tens of ms), not a
# person asking for a new pass: nobody reads "done" and presses Queue within half a second.
AUTO_QUEUE_ECHO_S = 0.5
RECENT_PROMPTS = 10_000


class BatchError(RuntimeError):
    """A batch cannot go on; the message is meant for the user (no traceback needed)."""

# Why a chain stopped, as the status line shows it.
STOP_CANCEL = "cancelled"
STOP_CLEAR = "the queue was cleared"
STOP_BUTTON = "Stop batch was pressed"
STOP_REMOVED = "its next image was removed from the queue"


@dataclass
class Batch:
    """A batch of one loader (node) of one workflow on one folder; see the module docstring."""

    settings: BatchSettings
    state: BatchState
    entries: list[ImageEntry]
    phase: str = IDLE
    prompt_id: str | None = None  # the prompt running (RUNNING) or queued (QUEUED) for it
    posting: bool = False  # QUEUED, and the POST of prompt_id has not returned yet
    stop_reason: str | None = None
    stop_requested_at: float | None = None
    client_id: str | None = None  # the browser that pressed Queue: it gets the progress events
    pressed_at: float | None = None  # create time of the prompt that started the current chain
    ended_at: float | None = None  # when the last chain ended
    detached: bool = False  # Reset forgot it: nothing it does is saved any more
    # Prompts of the current chain (and presses it refused): a Cancel naming any of them is for
    # this batch, however far behind the browser's idea of the running prompt is. As many as
    # ComfyUI keeps in its history.
    recent_prompts: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_PROMPTS))
    _stems: dict[str, str] | None = field(default=None, repr=False)  # output_stem's table
    shared: SharedJob | None = None  # several servers share it: images come from the job's claims
    waiting: int = 0  # shared: images of the pass held by other servers while this one has none to take
    failure: str = ""  # shared: the claims folder failed during this chain (it stops with this error)
    held_image: Any = None  # images_per_run: the decoded image that ended the last run (run.HeldImage)
    run_images: int = 1  # images in the run in progress (images_per_run)

    @classmethod
    def new_pass(cls, settings: BatchSettings, start_index: int, store: StateStore) -> Batch:
        """List the folder now (new files join here) and snapshot the list on disk. A shared batch
        joins the shared pass instead (the first server's listing), or starts one."""
        def listing() -> list[ImageEntry]:
            return list_images(settings.directory, FileMatcher(settings.filter_preset, settings.custom_pattern),
                               settings.include_subfolders, settings.sort_by)

        shared = None
        if settings.shared_job:
            shared, joined = open_shared_pass(settings, start_index, listing)
            entries, start_index = joined.entries, joined.start_index
        else:
            entries = listing()
        if not entries:
            raise BatchError(f"No matching images in '{settings.directory}' (filter: {settings.filter_preset}).")
        if start_index >= len(entries):
            raise BatchError(
                f"start_index {start_index} is past the last image: '{settings.directory}' has "
                f"{len(entries)} matching images (indexes 0 to {len(entries) - 1})."
            )
        state = BatchState(key=settings.key, node_id=settings.node_id, directory=settings.directory,
                           total=len(entries), start_index=start_index, next_index=start_index,
                           workflow_id=settings.workflow_id)
        store.save_snapshot(settings.key, entries)
        info("node %s: %s a batch of %d images from '%s' at image %d", settings.node_id,
             f"joining the shared job '{settings.shared_job}' with" if shared else "starting",
             len(entries) - start_index, settings.directory, start_index + 1)
        return cls(settings, state, entries, shared=shared)

    @property
    def key(self) -> str:
        return self.settings.key

    def full_path(self, index: int) -> str:
        return os.path.join(self.settings.directory, *self.entries[index].rel_path.split("/"))

    def output_stem(self, rel_path: str) -> str | None:
        """The stem to save rel_path under, unique among this batch's images (computed once)."""
        if self._stems is None:
            self._stems = unique_stems([e.rel_path for e in self.entries])
        return self._stems.get(rel_path)

    def contains(self, real_path: str) -> bool:
        """True when real_path (resolved) is one of this batch's images."""
        rel = os.path.relpath(real_path, os.path.realpath(self.settings.directory))
        return not rel.startswith("..") and any(e.rel_path == rel.replace(os.sep, "/") for e in self.entries)

    @property
    def going(self) -> bool:
        return self.phase != IDLE

    # ----- starting a chain -----------------------------------------------------------------
    def is_echo_or_duplicate(self, created: float, client_id: str | None) -> str | None:
        """For a user prompt when no chain runs: "duplicate" if it was queued while the last chain
        ran and before any stop request; "echo" if the same browser queued it within moments of
        the end (the frontend's auto-queue); else None (a real press)."""
        if self.ended_at is None or self.pressed_at is None:
            return None
        window_end = min(t for t in (self.stop_requested_at, self.ended_at) if t is not None)
        if self.pressed_at <= created < window_end:
            return "duplicate"
        # Only a batch that finished or failed is answered by an echo; after Stop or Cancel the
        # next press is a person resuming (the extension has turned auto-queue off by then).
        ended_by_itself = self.state.status == COMPLETE or bool(self.state.last_error)
        if (ended_by_itself and client_id is not None and client_id == self.client_id
                and 0 <= created - self.ended_at < AUTO_QUEUE_ECHO_S):
            return "echo"
        return None

    def echo_refusal(self) -> str:
        ended = "finished" if self.state.status == COMPLETE else "stopped"
        return (f"the batch on '{self.settings.directory}' has just {ended}; this run was queued automatically "
                "by the frontend's auto-queue (Run (Instant)), so it processes nothing. Batch Image Loader "
                "queues every image itself: turn auto-queue off, and press Queue to start a new pass.")

    def begin_chain(self, prompt_id: str, pressed_at: float, client_id: str | None) -> None:
        """A press starts (or resumes) the chain with prompt_id."""
        self.phase, self.prompt_id, self.posting = RUNNING, prompt_id, False
        self.stop_reason = self.stop_requested_at = None
        self.pressed_at, self.client_id = pressed_at, client_id
        self.recent_prompts.clear()
        self.recent_prompts.append(prompt_id)
        self.state.status, self.state.last_error, self.state.stop_reason = RUNNING, "", ""
        self.state.finished_at = None
        self.waiting, self.failure = 0, ""
        self.state.begin_run()

    def resume_point(self, continue_mode: bool) -> bool:
        """True when a press in Continue mode picks up where the batch stands."""
        return continue_mode and self.state.status != COMPLETE and self.state.next_index < len(self.entries)

    # ----- one image after another ------------------------------------------------------------
    def queue_next(self, prompt_id: str) -> None:
        """The image succeeded and more are left: prompt_id is reserved before it is POSTed."""
        self.phase, self.prompt_id, self.posting = QUEUED, prompt_id, True
        self.recent_prompts.append(prompt_id)

    def next_started(self, prompt_id: str) -> bool:
        """The queued prompt's loader runs: True when it may process its image (no stop came)."""
        if self.phase != QUEUED or self.prompt_id != prompt_id or self.stop_reason is not None:
            return False
        self.phase, self.posting = RUNNING, False
        return True

    def record_success(self, index: int) -> None:
        if self.shared is None:
            self.state.done += 1
            self.state.next_index = index + 1
        elif self._shared_call(self.shared.complete, index, "done"):
            self.state.done += 1  # this server's part: not a redo whose claim was lost

    def record_skip(self, index: int, rel_path: str, reason: str) -> None:
        self.state.skipped.append({"file": rel_path, "reason": reason})
        if self.shared is None:
            self.state.next_index = index + 1
        else:
            self._shared_call(self.shared.complete, index, "skipped", reason)

    def give_back(self, index: int, error: str = "", rel_path: str = "") -> None:
        """The image did not finish (Cancel, Stop, an error): a shared batch gives its claim back,
        and an error stops the shared batch for every server, naming the file."""
        if self.shared is not None:
            self._shared_call(self.shared.release, index)
            if error:
                self._shared_call(self.shared.request_stop, error, rel_path)

    def _shared_call(self, method: Any, *args: Any) -> Any:
        result, failure = call_shared(self.settings.node_id, method, *args)
        self.failure = self.failure or failure
        return result

    @property
    def finished_all(self) -> bool:
        """Nothing left for this batch: every image done, or, shared, every image of the pass has a
        done record (images that other servers hold are waited for, never taken as finished)."""
        if self.shared is None:
            return self.state.next_index >= self.state.total
        try:
            return self.shared.is_complete()
        except ClaimsFolderError as exc:
            self.failure = self.failure or str(exc)
            return False
        except (JobGoneError, RuntimeError):  # reset elsewhere: the next claim says so and stops
            return False

    # ----- stopping ---------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Remember a stop request; the chain ends when its current prompt is settled."""
        if self.going and self.stop_reason is None:
            self.stop_reason, self.stop_requested_at = reason, time.time()

    def end_chain(self, status: str, error: str = "") -> None:
        """No more prompts for this batch. status: COMPLETE, or STOPPED (error = why, if it failed)."""
        self.phase, self.prompt_id, self.posting = IDLE, None, False
        self.ended_at, self.held_image, self.run_images = time.time(), None, 1
        if self.state.status == RUNNING or status == COMPLETE:
            self.state.status = status
            self.state.last_error = error
            self.state.stop_reason = "" if error or status == COMPLETE else (self.stop_reason or "")
            self.state.finished_at = self.ended_at
            self.state.current_file = ""

    def log_end(self, status: str, error: str) -> None:
        state, node = self.state, self.settings.node_id
        if status == COMPLETE:
            elapsed = describe_duration((state.finished_at or time.time()) - state.started_at)
            info("node %s: batch complete on '%s': %d processed, %d skipped, in %s",
                 node, state.directory, state.done, len(state.skipped), elapsed)
            if state.skipped:
                warning("node %s: skipped files:\n%s", node,
                        "\n".join(f"  {s['file']}: {s['reason']}" for s in state.skipped))
        else:
            why = error or self.stop_reason or "a paired loader ran out of images"
            info("node %s: batch stopped at image %d/%d (%s)",
                 node, min(state.next_index + 1, state.total), state.total, why)

    def save(self, store: StateStore) -> None:
        if not self.detached:
            store.save(self.state)

    def describe(self, now: float | None = None) -> dict[str, Any]:
        run_images = self.run_images if self.going else 1
        info = describe_shared(self.state, self.going, self.shared, now, run_images) if self.shared else \
            describe(self.state, self.going, now, run_images)
        info["workflow_id"] = self.settings.workflow_id
        info["phase"] = self.phase
        info["stopping"] = self.going and self.stop_reason is not None
        info["waiting"] = self.waiting if self.going else 0
        if info["waiting"]:
            info["text"] += (f" - waiting for {self.waiting} image{'s' if self.waiting != 1 else ''} "
                             "on another server")
        info["run_images"] = self.run_images if self.going else 0
        if info["stopping"]:
            info["text"] += f" - stopping after this {'run' if self.run_images > 1 else 'image'}"
        return info


def describe_saved(state: BatchState, workflow_id: str, now: float | None = None) -> dict[str, Any]:
    """Status of a batch known only from disk (no chain in this process)."""
    info = describe(state, False, now)
    info["workflow_id"] = workflow_id
    info["phase"] = IDLE
    info["stopping"] = False
    return info


__all__ = [
    "COMPLETE",
    "IDLE",
    "NEW_PASS",
    "QUEUED",
    "RUNNING",
    "STOPPED",
    "STOP_BUTTON",
    "STOP_CANCEL",
    "STOP_CLEAR",
    "STOP_REMOVED",
    "Batch",
    "BatchError",
    "describe_saved",
]
