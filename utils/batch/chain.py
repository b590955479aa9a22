"""How a batch's chain moves from one image to the next: each prompt is watched until ComfyUI
has finished it; only then is its image recorded and the next image's prompt POSTed.

The controller decides what a prompt is (a press, a continuation, a duplicate); this object
owns the map from prompt ids to what they mean to the batches, and ends chains.
"""

from __future__ import annotations

import threading
import uuid

from .. import log
from ..comfy import bridge
from ..comfy.prompt_watcher import PromptWatcher
from ..comfy.queue_control import QueueError, build_payload, describe_node_errors, post_prompt
from ..images.host_buffers import host_buffers
from ..images.prefetch import Prefetcher
from .batch import COMPLETE, QUEUED, RUNNING, STOP_CANCEL, STOP_REMOVED, STOPPED, Batch
from .events import BatchEvents
from .prompt_runs import PromptRun, classify_outcome
from .registry import BatchRegistry


class BatchChain:
    """Shares the controller's lock; every method that changes a batch takes it."""

    def __init__(self, lock: threading.RLock, registry: BatchRegistry, prefetcher: Prefetcher,
                 events: BatchEvents) -> None:
        self.lock = lock
        self._registry = registry
        self.prefetcher = prefetcher
        self.events = events
        self.prompts: dict[str, PromptRun] = {}  # prompt id -> what it means to the batches
        self._watcher = PromptWatcher(self.conclude)

    def settle_previous(self, key: str, prompt_id: str) -> None:
        """A new prompt runs, so the batch's previous one has finished: record it now rather than
        wait for the watcher (outside the lock: recording may queue the next image)."""
        with self.lock:
            batch = self._registry.get(key)
            previous = batch.prompt_id if batch is not None and batch.phase == RUNNING else None
            if previous == prompt_id or previous not in self.prompts:
                return
        if previous is not None:
            status = bridge.finished_status(previous)
            if status is not bridge.NOT_FINISHED:
                self.conclude(previous, status)

    def start_prompt_run(self, prompt_id: str, prompt: dict | None, extra_pnginfo: dict | None) -> PromptRun:
        run = PromptRun(prompt_id, bridge.prompt_template(prompt_id, prompt, extra_pnginfo))
        self.prompts[prompt_id] = run
        self._watcher.watch(prompt_id)
        return run

    def conclude(self, prompt_id: str, status: object) -> None:
        """prompt_id finished (or vanished): record it, then queue the next image or end the chains.
        Called by the watcher and by the next loader; whichever comes second finds nothing to do."""
        outcome, message = classify_outcome(status)
        with self.lock:
            run = self.prompts.pop(prompt_id, None)
            if run is None:
                return
            if outcome == "success" and run.loaders and bridge.interrupt_pending():
                for lr in run.loaders:  # Cancel came after the last node: the image is done, then stop
                    lr.batch.request_stop(STOP_CANCEL)
            try:
                follow_up = self._after_prompt(run, outcome, message)
            except Exception:  # never leave a batch hanging in "running"
                for batch in [*run.continues, *(lr.batch for lr in run.loaders)]:
                    self.end(batch, STOPPED, "internal error, see the ComfyUI log")
                raise
        if follow_up is not None:
            self._post_continuation(*follow_up)

    def _after_prompt(self, run: PromptRun, outcome: str, message: str) -> tuple[PromptRun, list[Batch]] | None:
        """Record what the finished prompt did; returns the continuation to POST, if any."""
        for batch in run.continues:  # queued by us, never started: removed from the queue
            if batch.phase == QUEUED and batch.prompt_id == run.prompt_id:
                batch.request_stop(STOP_REMOVED)
                self.end(batch, STOPPED)
        go_on, errors = run.record(outcome, message)
        if go_on:
            next_id = str(uuid.uuid4())
            batches = [lr.batch for lr in run.loaders]
            follow = PromptRun(next_id, run.template, continues=batches)
            self.prompts[next_id] = follow
            for batch in batches:
                batch.queue_next(next_id)
                self.events.status(batch)
            return follow, batches
        for lr in run.loaders:
            if lr.batch.phase == RUNNING and lr.batch.prompt_id == run.prompt_id:
                # A paired loader in the same workflow ran out first (zip), Stop was pressed, or it failed.
                self.end(lr.batch, COMPLETE if lr.batch.finished_all else STOPPED, errors.get(lr.batch.key, ""))
        return None

    def _post_continuation(self, follow: PromptRun, batches: list[Batch]) -> None:
        """POST without holding the lock: the server's own thread answers it (and our routes).
        The progress is saved right after the POST, off the gap between two images; a crash in
        between costs at most a redo of the image that just finished."""
        assert follow.template is not None
        error = ""
        try:
            answer = post_prompt(bridge.own_url() + "/prompt", build_payload(follow.template, follow.prompt_id))
            refused = describe_node_errors(answer.get("node_errors"))
            if refused:  # queued, but ComfyUI dropped the outputs that depend on these nodes
                log.warning("the next image was queued without some outputs: %s", refused)
        except QueueError as exc:
            log.error("%s. The batch stopped.", exc)
            error = str(exc)
        with self.lock:
            for batch in batches:
                if batch.prompt_id != follow.prompt_id:
                    continue  # it already started, ended or was reset
                batch.posting = False
                if error:
                    self.prompts.pop(follow.prompt_id, None)
                    self.end(batch, STOPPED, error)
                elif batch.phase == QUEUED and batch.stop_reason is not None:
                    self.cancel_queued(batch)  # stopped while the POST was on its way
            for batch in batches:
                batch.save(self._registry.store)
        if not error:
            self._watcher.watch(follow.prompt_id)  # notices if it is removed from the queue

    def cancel_queued(self, batch: Batch) -> None:
        """Take a queued next image out of the queue and end the chain. If the worker has already
        taken it, its loader sees the stop request and does nothing."""
        if batch.posting or batch.prompt_id is None:
            return
        if bridge.delete_pending(batch.prompt_id):
            self.prompts.pop(batch.prompt_id, None)
            self.end(batch, STOPPED)

    def end(self, batch: Batch, status: str, error: str = "") -> None:
        batch.end_chain(status, error)
        self.prefetcher.discard(batch.key)
        host_buffers.trim()  # its images' memory goes back to the system (utils/images/host_buffers.py)
        batch.save(self._registry.store)
        batch.log_end(status, error)
        self.events.status(batch)

