"""The batch chain: which image a loader takes, and when the next prompt is queued.

One controller per ComfyUI process. A loader asks it for the next image; the controller
remembers which prompts it queued itself (continuations), watches each prompt until ComfyUI
has finished it, marks the image done only when the prompt succeeded, and only then queues
the next one. So Cancel leaves nothing in the queue, a failure anywhere in the workflow obeys
the loader's error policy, and a second Queue press can never start a second chain.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import comfy_bridge as bridge
from . import log
from .batch_state import COMPLETE, RUNNING, STOPPED, BatchSettings, BatchState, StateStore
from .batch_status import describe, describe_duration
from .file_listing import FileMatcher, ImageEntry, list_images
from .image_decode import DecodeError
from .prefetch import PREFETCH_AHEAD, Prefetcher, PreparedImage, prepare
from .prompt_watcher import PromptWatcher
from .queue_control import (
    PromptTemplate,
    QueueError,
    build_payload,
    describe_node_errors,
    post_prompt,
    template_from_hidden_inputs,
    template_from_queue_item,
)

STOP_ON_ERROR, SKIP_ON_ERROR = "Stop on error", "Skip on error"
CONTINUE, RESET = "Continue", "Reset"

# A prompt from the batch's own browser queued this soon after the batch ended is the frontend's
# auto-queue ("Run (Instant)") answering the empty queue (it does so within tens of ms), not a
# person asking for a new pass: nobody reads "done" and presses Queue within half a second.
AUTO_QUEUE_ECHO_S = 0.5


class BatchError(RuntimeError):
    """A batch cannot go on; the message is meant for the user (no traceback needed)."""


@dataclass
class LoadedImage:
    """What a loader outputs for one image of its batch."""

    entry: ImageEntry
    full_path: str
    index: int
    total: int
    image: PreparedImage

    @property
    def is_last(self) -> bool:
        return self.index >= self.total - 1


@dataclass
class LoaderRun:
    """One loader's image within one prompt."""

    settings: BatchSettings
    index: int
    rel_path: str
    error_policy: str


@dataclass
class PromptRun:
    """Loaders of one running prompt, and whether any of them ended the batch in it."""

    prompt_id: str
    template: PromptTemplate | None = None
    loaders: list[LoaderRun] = field(default_factory=list)
    ends_chain: bool = False


def classify_outcome(status: object) -> tuple[str, str]:
    """("success"|"interrupted"|"error"|"lost", message) from a history status dict."""
    if status is None or not isinstance(status, dict):
        return "lost", "the prompt disappeared from ComfyUI's history"
    if status.get("status_str") == "success":
        return "success", ""
    for event, _ in status.get("messages") or []:
        if event == "execution_interrupted":
            return "interrupted", "cancelled"
    for event, data in status.get("messages") or []:
        if event == "execution_error" and isinstance(data, dict):
            node = f"node {data.get('node_id', '?')} ({data.get('node_type', '?')})"
            return "error", f"{node} failed: {data.get('exception_message', '').strip()}"
    return "error", "the prompt failed"


class BatchController:
    """Holds every batch this ComfyUI process knows; all methods are thread-safe."""

    def __init__(
        self,
        store_factory: Callable[[], StateStore] | None = None,
        prepare_fn: Callable[..., PreparedImage] = prepare,
    ) -> None:
        self._lock = threading.RLock()
        self._store_factory = store_factory or (
            lambda: StateStore(os.path.join(bridge.user_directory(), "batch_image_processing"))
        )
        self._store: StateStore | None = None
        self._prepare = prepare_fn
        self._prefetcher = Prefetcher(prepare_fn)
        self._target: tuple[Any, Any] = (None, None)  # device, dtype of the tensors to build
        self._states: dict[str, BatchState] = {}
        self._snapshots: dict[str, list[ImageEntry]] = {}
        self._runs: dict[str, PromptRun] = {}  # prompt id -> loaders running in it
        self._continuations: dict[str, frozenset[str]] = {}  # prompt ids we queued -> batch keys
        self._templates: dict[str, PromptTemplate] = {}  # prompt ids we queued -> what they were built from
        self._in_flight: dict[str, str] = {}  # batch key -> prompt id running or queued for it
        self._stale: dict[str, set[str]] = {}  # batch key -> prompts queued while it ran
        self._posting: set[str] = set()  # continuations being POSTed right now (not in the queue yet)
        self._stop_requested: set[str] = set()
        self._settings: dict[str, BatchSettings] = {}  # batch key -> what its loader asked for
        self._clients: dict[str, str | None] = {}  # batch key -> client_id of the browser that runs it
        self._ended: dict[str, float] = {}  # batch key -> when its chain ended (or an echo was refused)
        self._watcher = PromptWatcher(self._conclude)

    # ----- state -------------------------------------------------------------------------
    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def _state(self, key: str) -> BatchState | None:
        if key not in self._states:
            state = self.store.load(key)
            if state is None:
                return None
            self._states[key] = state
        return self._states[key]

    def _snapshot(self, key: str) -> list[ImageEntry] | None:
        if key not in self._snapshots:
            snap = self.store.load_snapshot(key)
            if snap is None:
                return None
            self._snapshots[key] = snap
        return self._snapshots[key]

    def is_running(self, directory: str, filter_preset: str, custom_pattern: str, include_subfolders: bool,
                   sort_by: str) -> bool:
        """True when a batch with these settings is going: validation of its next prompt can skip the scan."""
        wanted = (directory, filter_preset, custom_pattern if filter_preset == "Custom" else "",
                  bool(include_subfolders), sort_by)
        with self._lock:
            for key in self._in_flight:
                s = self._settings.get(key)
                if s and (s.directory, s.filter_preset, s.custom_pattern, s.include_subfolders, s.sort_by) == wanted:
                    return True
        return False

    def is_batch_input(self, path: str) -> bool:
        """True when path is one of the images of a batch this process knows (to warn before clobbering)."""
        real = os.path.realpath(path)
        with self._lock:
            for key, entries in self._snapshots.items():
                state = self._states.get(key)
                if state is None:
                    continue
                rel = os.path.relpath(real, os.path.realpath(state.directory))
                if not rel.startswith("..") and any(e.rel_path == rel.replace(os.sep, "/") for e in entries):
                    return True
        return False

    # ----- what kind of prompt is this -------------------------------------------------------
    def _is_alive(self, prompt_id: str) -> bool:
        if prompt_id in self._runs or prompt_id in self._posting:
            return True
        running, pending = bridge.queued_prompt_ids()
        return prompt_id in running or prompt_id in pending

    def _after_the_batch(self, prompt_id: str, key: str) -> str | None:
        """For a user prompt when no chain runs: "duplicate" if it was queued while the batch ran
        (a race the stale list can miss: queued during the last image, started right after it),
        "echo" if the batch's own browser queued it within moments of the end, else None."""
        ended = self._ended.get(key)
        if ended is None:
            return None
        item = bridge.running_item(prompt_id)
        extra = item[3] if item is not None and len(item) > 3 and isinstance(item[3], dict) else {}
        created = extra.get("create_time", time.time() * 1000) / 1000
        state = self._state(key)
        if state is not None and state.run_started_at <= created < ended:
            return "duplicate"
        same_browser = key in self._clients and extra.get("client_id") == self._clients[key]
        if same_browser and 0 <= created - ended < AUTO_QUEUE_ECHO_S:
            return "echo"
        return None

    def _is_duplicate(self, prompt_id: str, key: str) -> bool:
        """A user prompt while this batch runs, or one queued while it ran: it must do nothing."""
        if prompt_id in self._stale.get(key, ()):
            return True
        other = self._in_flight.get(key)
        if other is None or other == prompt_id:
            return False
        if self._is_alive(other):
            return True
        # Our queued continuation vanished (queue cleared or item deleted): the chain is dead.
        del self._in_flight[key]
        state = self._state(key)
        if state is not None and state.status == RUNNING:
            state.status = STOPPED
            state.last_error = "the next prompt of the batch was removed from the queue"
            self.store.save(state)
        return False

    # ----- the loader's entry point ------------------------------------------------------------
    def load_next(
        self,
        settings: BatchSettings,
        iteration_mode: str,
        error_policy: str,
        start_index: int,
        prompt: dict | None,
        extra_pnginfo: dict | None,
        device: Any = None,
        dtype: Any = None,
    ) -> LoadedImage | None:
        """The image this prompt should process, or None when it must do nothing.

        None means: a duplicate run of a batch that is already going, or a batch whose
        remaining files were all unreadable and skipped. Listing and decoding happen outside
        the lock, so validation and the HTTP routes never wait for them.
        """
        prompt_id = bridge.current_prompt_id()
        if not prompt_id:
            raise BatchError("Batch Image Loader could not find the id of the running prompt.")
        key = settings.key
        with self._lock:
            self._target = (device, dtype)
            self._settings[key] = settings
            is_continuation = key in self._continuations.get(prompt_id, ())
            after = None if is_continuation or key in self._in_flight else self._after_the_batch(prompt_id, key)
            if after == "duplicate":
                self._warn_duplicate(settings, prompt_id)
                return None
            if after == "echo":
                self._ended[key] = time.time()
                state = self._state(key)
                raise BatchError(
                    f"the batch on '{settings.directory}' has just "
                    f"{'finished' if state is None or state.status == COMPLETE else 'stopped'}; this run was "
                    "queued automatically by the frontend's auto-queue (Run (Instant)), so it processes nothing. "
                    "Batch Image Loader queues every image itself: turn auto-queue off, and press Queue "
                    "to start a new pass."
                )
            if not is_continuation and self._is_duplicate(prompt_id, key):
                self._warn_duplicate(settings, prompt_id)
                return None
            if is_continuation:
                state, entries = self._state(key), self._snapshot(key)
                if state is None or entries is None:
                    raise BatchError(f"The saved state of the batch on '{settings.directory}' is gone.")
            else:
                state, entries = self._resume(settings, iteration_mode)
            run = self._runs.get(prompt_id) or self._start_prompt_run(prompt_id, prompt, extra_pnginfo)
        if state is None or entries is None:
            state, entries = self._start_batch(settings, start_index)
        loaded = self._pick_image(settings, state, entries, error_policy, run)
        if loaded is None:
            return None
        with self._lock:
            run.loaders.append(LoaderRun(settings, loaded.index, loaded.entry.rel_path, error_policy))
            self._in_flight[key] = prompt_id
            self._clients[key] = run.template.client_id if run.template is not None else None
            state.current_file = loaded.entry.rel_path
            self._prefetch_after(settings, entries, loaded.index)
            self._notify(state, run, prompt_id)
        log.info("node %s: image %d/%d %s", settings.node_id, loaded.index + 1, loaded.total, loaded.entry.rel_path)
        return loaded

    def _resume(self, settings: BatchSettings, mode: str) -> tuple[BatchState | None, list[ImageEntry] | None]:
        """A user pressed Queue: the batch to resume (Continue), or (None, None) for a new pass."""
        key = settings.key
        self._stop_requested.discard(key)
        self._stale.pop(key, None)
        self._prefetcher.discard(key)
        state, entries = self._state(key), self._snapshot(key)
        if (
            mode != CONTINUE
            or state is None
            or entries is None
            or state.status == COMPLETE
            or state.next_index >= len(entries)
        ):
            return None, None
        state.status, state.last_error, state.finished_at = RUNNING, "", None
        state.begin_run()
        log.info(
            "node %s: resuming the batch on '%s' at image %d/%d",
            settings.node_id, settings.directory, state.next_index + 1, state.total,
        )
        return state, entries

    def _start_batch(self, settings: BatchSettings, start_index: int) -> tuple[BatchState, list[ImageEntry]]:
        """A new pass: list the folder now (new files join here) and snapshot the list."""
        entries = list_images(
            settings.directory,
            FileMatcher(settings.filter_preset, settings.custom_pattern),
            settings.include_subfolders,
            settings.sort_by,
        )
        if not entries:
            raise BatchError(f"No matching images in '{settings.directory}' (filter: {settings.filter_preset}).")
        if start_index >= len(entries):
            raise BatchError(
                f"start_index {start_index} is past the last image: '{settings.directory}' has "
                f"{len(entries)} matching images (indexes 0 to {len(entries) - 1})."
            )
        key = settings.key
        state = BatchState(
            key=key,
            node_id=settings.node_id,
            directory=settings.directory,
            total=len(entries),
            start_index=start_index,
            next_index=start_index,
        )
        self.store.save_snapshot(key, entries)
        with self._lock:
            self._states[key], self._snapshots[key] = state, entries
            self.store.save(state)
        log.info(
            "node %s: starting a batch of %d images from '%s' at image %d",
            settings.node_id, len(entries) - start_index, settings.directory, start_index + 1,
        )
        return state, entries

    def _pick_image(
        self,
        settings: BatchSettings,
        state: BatchState,
        entries: list[ImageEntry],
        error_policy: str,
        run: PromptRun,
    ) -> LoadedImage | None:
        """Decode the image at next_index; under Skip on error, move on to the next readable one.

        Only this prompt's thread moves next_index while the prompt runs, so it is read
        without the lock; decoding happens without it.
        """
        while state.next_index < len(entries):
            index = state.next_index
            entry = entries[index]
            full_path = os.path.join(settings.directory, *entry.rel_path.split("/"))
            try:
                prepared = self._prefetcher.take(state.key, index, full_path)
                if prepared is None:
                    prepared = self._prepare(full_path, *self._target)
            except DecodeError as exc:
                with self._lock:
                    if error_policy != SKIP_ON_ERROR:
                        run.ends_chain = True
                        self._stop(state.key, str(exc))
                        self._notify(state, run)
                        raise BatchError(f"{exc}. The batch stopped (error_handling: Stop on error).") from None
                    log.warning("node %s: skipping %s: %s", settings.node_id, entry.rel_path, exc.reason)
                    state.skipped.append({"file": entry.rel_path, "reason": exc.reason})
                    state.next_index = index + 1
                    self.store.save(state)
                continue
            return LoadedImage(entry, full_path, index, len(entries), prepared)
        # Everything left was unreadable: the batch is over, nothing to process in this run.
        with self._lock:
            run.ends_chain = True
            self._finish(state, COMPLETE)
            self._end_chain(state.key)
            self._notify(state, run)
        return None

    def _prefetch_after(self, settings: BatchSettings, entries: list[ImageEntry], index: int) -> None:
        for ahead in range(index + 1, min(index + 1 + PREFETCH_AHEAD, len(entries))):
            path = os.path.join(settings.directory, *entries[ahead].rel_path.split("/"))
            self._prefetcher.schedule(settings.key, ahead, path, *self._target)

    def _warn_duplicate(self, settings: BatchSettings, prompt_id: str) -> None:
        state = self._state(settings.key)
        where = f", now at image {min(state.next_index + 1, state.total)}/{state.total}" if state else ""
        log.warning(
            "node %s: this run (prompt %s) was queued while the batch on '%s' was running%s, so it "
            "does nothing: each image is processed once.",
            settings.node_id, prompt_id, settings.directory, where,
        )

    # ----- watching a prompt to its end --------------------------------------------------------
    def _start_prompt_run(self, prompt_id: str, prompt: dict | None, extra_pnginfo: dict | None) -> PromptRun:
        # A continuation is the same prompt again: reuse its template instead of copying the
        # (possibly large) prompt and workflow once more for every image.
        template = self._templates.pop(prompt_id, None)
        item = bridge.running_item(prompt_id) if template is None else None
        if item is not None:
            template = template_from_queue_item(item)
        elif template is None and prompt:
            template = template_from_hidden_inputs(prompt, extra_pnginfo, bridge.current_client_id())
        run = PromptRun(prompt_id, template)
        self._runs[prompt_id] = run
        self._watcher.watch(prompt_id)
        return run

    def _conclude(self, prompt_id: str, status: object) -> None:
        """The watcher saw prompt_id finish: record it, then queue the next image or end the batch."""
        try:
            outcome, message = classify_outcome(status)
            with self._lock:
                run = self._runs.pop(prompt_id)
                if outcome == "success" and bridge.interrupt_pending():
                    # Cancel came after the last node: this image is done, the batch stops as with Stop.
                    self._stop_requested.update(loader.settings.key for loader in run.loaders)
                follow_up = self._after_prompt(run, outcome, message)
            if follow_up is not None:
                self._post_continuation(*follow_up)
        except Exception:
            with self._lock:  # never leave a batch hanging in "running"
                run = self._runs.pop(prompt_id, None)
                for loader in run.loaders if run else []:
                    self._stop(loader.settings.key, "internal error, see the ComfyUI log")
            raise

    def _after_prompt(self, run: PromptRun, outcome: str, message: str) -> tuple[PromptTemplate, str] | None:
        """Record what the finished prompt did; returns (template, prompt id) to queue next, if any."""
        self._continuations.pop(run.prompt_id, None)
        self._templates.pop(run.prompt_id, None)
        go_on = bool(run.loaders) and not run.ends_chain
        for loader in run.loaders:
            state = self._state(loader.settings.key)
            if state is None:
                go_on = False
                continue
            if outcome == "success":
                state.done += 1
                state.next_index = loader.index + 1
            elif outcome == "error" and not run.ends_chain and loader.error_policy == SKIP_ON_ERROR:
                log.warning("node %s: skipping %s: %s", loader.settings.node_id, loader.rel_path, message)
                state.skipped.append({"file": loader.rel_path, "reason": message})
                state.next_index = loader.index + 1
            else:
                go_on = False
                if state.status == RUNNING:
                    state.status = STOPPED
                    state.last_error = "" if outcome == "interrupted" else f"{loader.rel_path}: {message}"
                    log.info(
                        "node %s: batch stopped at image %d/%d (%s)",
                        loader.settings.node_id, loader.index + 1, state.total, message or outcome,
                    )
            if state.next_index >= state.total:
                self._finish(state, COMPLETE)
                go_on = False
            if loader.settings.key in self._stop_requested:
                go_on = False
        if go_on and run.template is None:
            go_on = False
            for loader in run.loaders:
                self._stop(loader.settings.key, "the running prompt could not be read to queue the next image")
        if go_on:
            assert run.template is not None
            next_id = self._reserve_continuation(run)
            self._notify_all(run)
            return run.template, next_id
        for loader in run.loaders:
            state = self._state(loader.settings.key)
            if state is not None and state.status == RUNNING:
                # A paired loader in the same workflow ran out first (zip), or Stop was pressed.
                self._finish(state, STOPPED)
            self._end_chain(loader.settings.key)
        for loader in run.loaders:
            state = self._state(loader.settings.key)
            if state is not None:
                self.store.save(state)
        self._notify_all(run)
        return None

    def _reserve_continuation(self, run: PromptRun) -> str:
        """Record the next prompt's id before it is POSTed: the worker may start it before the POST returns."""
        next_id = str(uuid.uuid4())
        keys = frozenset(loader.settings.key for loader in run.loaders)
        self._continuations[next_id] = keys
        assert run.template is not None
        self._templates[next_id] = run.template
        self._posting.add(next_id)
        for key in keys:
            self._in_flight[key] = next_id
        return next_id

    def _post_continuation(self, template: PromptTemplate, next_id: str) -> None:
        """POST without holding the lock: the server's own thread answers it (and our routes).

        The progress is written to disk right after the POST, off the gap between two images;
        a crash in between costs at most a redo of the image that just finished.
        """
        try:
            answer = post_prompt(bridge.own_url() + "/prompt", build_payload(template, next_id))
            refused = describe_node_errors(answer.get("node_errors"))
            if refused:  # queued, but ComfyUI dropped the outputs that depend on these nodes
                log.warning("the next image was queued without some outputs: %s", refused)
        except QueueError as exc:
            log.error("%s. The batch stopped.", exc)
            with self._lock:
                self._templates.pop(next_id, None)
                for key in self._continuations.pop(next_id, frozenset()):
                    self._stop(key, str(exc))
        finally:
            with self._lock:
                self._posting.discard(next_id)
                keys = self._continuations.get(next_id, frozenset())
                if keys & self._stop_requested and next_id not in self._runs:
                    # Stop was pressed while the POST was on its way. (Once the next image's loader
                    # has run, the stop request stays and takes effect when that image is done.)
                    self._cancel_pending(next_id)
                for key in keys:
                    self.store.save(self._states[key])

    def _cancel_pending(self, prompt_id: str) -> None:
        """Take a queued continuation out of the queue and stop its batches (Stop pressed)."""
        bridge.delete_pending(prompt_id)
        self._templates.pop(prompt_id, None)
        for key in self._continuations.pop(prompt_id, frozenset()):
            state = self._state(key)
            if state is not None and state.status == RUNNING:
                self._finish(state, STOPPED)
                log.info("node %s: batch stopped by the user at image %d/%d",
                         state.node_id, state.next_index + 1, state.total)
            self._end_chain(key)
            if state is not None:
                self._notify(state, None)

    # ----- watching and steering from outside (HTTP routes) ----------------------------------
    def _known_states(self) -> dict[str, BatchState]:
        states = {s.key: s for s in self.store.all_states()}
        states.update(self._states)
        return states

    def status(self) -> list[dict[str, Any]]:
        """Every batch this server knows (in memory or on disk), newest first."""
        with self._lock:
            now = time.time()
            rows = [describe(s, key in self._in_flight, now) for key, s in self._known_states().items()]
        return sorted(rows, key=lambda r: r["started_at"], reverse=True)

    def _keys_of(self, node_id: str | None) -> list[str]:
        keys = [k for k, s in self._known_states().items() if node_id is None or s.node_id == node_id]
        if node_id is not None and not keys:
            raise KeyError(node_id)
        return keys

    def stop(self, node_id: str | None = None) -> list[str]:
        """Stop the running batches of node_id (None: all): the image in progress finishes, nothing
        more runs, a queued next prompt is taken out of the queue. Returns the keys stopped."""
        with self._lock:
            return self._stop_keys(self._keys_of(node_id))

    def _stop_keys(self, keys: list[str]) -> list[str]:
        stopped = []
        with self._lock:
            for key in keys:
                prompt_id = self._in_flight.get(key)
                if prompt_id is None:
                    continue
                self._stop_requested.add(key)
                stopped.append(key)
                if prompt_id not in self._runs and prompt_id not in self._posting:
                    self._cancel_pending(prompt_id)  # queued, not started: it never runs
        return stopped

    def reset(self, node_id: str) -> list[str]:
        """Forget the position of node_id's batches: the next Queue starts at start_index."""
        with self._lock:
            keys = self._keys_of(node_id)
            self._stop_keys(keys)
            for key in keys:
                self._states.pop(key, None)
                self._snapshots.pop(key, None)
                self._prefetcher.discard(key)
                self.store.delete(key)
        log.info("node %s: batch position forgotten (reset)", node_id)
        return keys

    def _notify(self, state: BatchState, run: PromptRun | None, prompt_id: str | None = None) -> None:
        """Tell the browser that queued the batch: a progress bar on the loader, and the status line."""
        client_id = run.template.client_id if run is not None and run.template is not None else None
        running = state.key in self._in_flight
        info = describe(state, running)
        try:
            if prompt_id is not None:
                bridge.send_event("progress", {"value": info["position"], "max": info["total"],
                                               "prompt_id": prompt_id, "node": state.node_id}, client_id)
            bridge.send_event("batch_image_processing.status", info, client_id)
        except Exception:  # no server (tests) or a closing one: progress display is best effort
            log.debug("could not send the batch status")

    def _notify_all(self, run: PromptRun) -> None:
        for loader in run.loaders:
            state = self._state(loader.settings.key)
            if state is not None:
                self._notify(state, run)

    def _stop(self, key: str, reason: str) -> None:
        state = self._state(key)
        if state is not None and state.status == RUNNING:
            state.status, state.last_error = STOPPED, reason
            self.store.save(state)
        self._end_chain(key)

    def _end_chain(self, key: str) -> None:
        """No more prompts for this batch; prompts already queued by the user must do nothing."""
        self._in_flight.pop(key, None)
        self._ended[key] = time.time()
        self._prefetcher.discard(key)
        self._stop_requested.discard(key)
        try:
            _, pending = bridge.queued_prompt_ids()
        except Exception:  # server gone (shutdown): nothing to guard
            pending = set()
        self._stale[key] = set(pending)

    def _finish(self, state: BatchState, status: str) -> None:
        state.status = status
        state.finished_at = time.time()
        state.current_file = ""
        self.store.save(state)
        if status != COMPLETE:
            return
        elapsed = state.finished_at - state.started_at
        log.info(
            "node %s: batch complete on '%s': %d processed, %d skipped, in %s",
            state.node_id, state.directory, state.done, len(state.skipped), describe_duration(elapsed),
        )
        if state.skipped:
            log.warning(
                "node %s: skipped files:\n%s",
                state.node_id,
                "\n".join(f"  {s['file']}: {s['reason']}" for s in state.skipped),
            )


_controller: BatchController | None = None
_controller_lock = threading.Lock()


def controller() -> BatchController:
    """The process-wide controller (created on first use, inside a running ComfyUI)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = BatchController()
        return _controller
