"""The entry points of batches: the loader's next image, the routes, and the user's queue requests.

A loader asks for its next image; the controller finds its Batch (utils/batch/batch.py has the whole
life of one batch) in the registry and decides whether the prompt is a press, a continuation or
a duplicate; utils/batch/chain.py watches each prompt to its end and queues the next image.
Cancel, Clear queue and deletions reach on_queue_request before ComfyUI acts on them, so one
that lands between two images is not lost.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import log
from ..comfy import bridge
from ..images.color import CONVERT_TO_SRGB
from ..images.decode import DecodeError
from ..images.prefetch import Prefetcher, PreparedImage, prepare
from ..images.run_batch import wanted
from .batch import COMPLETE, NEW_PASS, QUEUED, STOP_BUTTON, STOPPED, Batch
from .chain import BatchChain
from .events import BatchEvents
from .fencing import may_write, record_saved
from .picking import BatchError, WaitStoppedError, pick_image
from .prompt_runs import CONTINUE, SKIP_ON_ERROR, LoadedImage, LoaderRun, RunInput
from .queue_requests import adopt_presses, batches_to_stop
from .registry import BatchRegistry
from .run import pick_run, prefetch_after
from .shared import STOP_ALL, ClaimsFolderError, JobGoneError, JobStoppedError, SharedFolderError, stop_from
from .state import BatchSettings, StateStore


class BatchController:
    """Holds every batch this ComfyUI process knows; all methods are thread-safe."""

    def __init__(
        self,
        store_factory: Callable[[], StateStore] | None = None,
        prepare_fn: Callable[..., PreparedImage] = prepare,
    ) -> None:
        self._lock = threading.RLock()
        self._registry = BatchRegistry(store_factory or (
            lambda: StateStore(os.path.join(bridge.user_directory(), "batch_image_processing"))
        ))
        self._prepare = prepare_fn
        self._prefetcher = Prefetcher(prepare_fn)
        self._target: tuple[Any, ...] = (None, None, CONVERT_TO_SRGB)  # device, dtype, colour mode
        self._events = BatchEvents()
        self._chain = BatchChain(self._lock, self._registry, self._prefetcher, self._events)

    @property
    def store(self) -> StateStore:
        return self._registry.store

    # ----- the loader's entry point ------------------------------------------------------------
    def load_next(self, settings: BatchSettings, iteration_mode: str, error_policy: str, start_index: int,
                  prompt: dict | None, extra_pnginfo: dict | None, device: Any = None, dtype: Any = None,
                  color_profile: str = CONVERT_TO_SRGB, images_per_run: int = 1) -> LoadedImage | None:
        """The image (or run of images_per_run) this prompt should process, or None when it must do
        nothing (a duplicate press, a queued image whose batch was stopped, or nothing readable
        left). Listing and decoding happen outside the lock: validation and the routes never wait."""
        prompt_id = bridge.current_prompt_id()
        if not prompt_id:
            raise BatchError("Batch Image Loader could not find the id of the running prompt.")
        self._chain.settle_previous(settings.key, prompt_id)
        with self._lock:
            self._target = (device, dtype, color_profile)
            run = self._chain.prompts.get(prompt_id) or self._chain.start_prompt_run(prompt_id, prompt, extra_pnginfo)
            batch = run.continues_key(settings.key)
            if batch is not None:
                if not batch.next_started(prompt_id):  # stopped or reset while it waited in the queue
                    if batch.prompt_id == prompt_id:
                        self._chain.end(batch, STOPPED)
                    return None
            else:
                batch = self._press(settings, prompt_id, iteration_mode)
                if batch is None:
                    return None
        if not isinstance(batch, Batch):  # NEW_PASS: list the folder or join the shared pass (outside the lock)
            batch = self._new_pass(settings, start_index, prompt_id)
        try:
            loaded = pick_image(batch, error_policy, self._prefetcher, self._prepare, self._target, self._lock,
                                lambda left: self._waiting(batch, left)) if images_per_run == 1 else \
                pick_run(batch, images_per_run, error_policy, self._prefetcher, color_profile, self._lock,
                         lambda left: self._waiting(batch, left), into_batch=wanted(device, dtype))
        except (JobStoppedError, JobGoneError, ClaimsFolderError, WaitStoppedError) as exc:
            with self._lock:  # stopped while waiting, stopped or reset on another server, claims folder failed
                run.ends_chain, (error, reason) = True, stop_from(exc)
                batch.stop_reason = batch.stop_reason or reason or None
                self._chain.end(batch, STOPPED, error)
            if isinstance(exc, ClaimsFolderError):
                raise BatchError(str(exc)) from None
            return None
        except Exception as exc:  # unreadable under Stop on error, or unexpected: never left "running"
            unreadable = isinstance(exc, DecodeError)
            error = str(exc) if unreadable else f"reading the next images failed: {exc!r}"
            with self._lock:
                run.ends_chain = True
                self._chain.end(batch, STOPPED, error)
            raise BatchError(error + (". The batch stopped (error_handling: Stop on error)." if unreadable
                                      else ". The batch stopped.")) from None
        with self._lock:
            if loaded is None:  # everything left was unreadable and skipped
                run.ends_chain = True
                self._chain.end(batch, COMPLETE)
                return None
            run.loaders.append(LoaderRun.of(batch, loaded, error_policy))
            batch.state.current_file = loaded.entry.rel_path
            prefetch_after(batch, loaded, images_per_run, self._prefetcher, self._target)
            self._events.status(batch, prompt_id)
        log.info("node %s: image %d/%d %s%s", settings.node_id, loaded.index + 1, loaded.total, loaded.entry.rel_path,
                 f" and {len(loaded.more)} more of its size" if loaded.more else "")
        return loaded

    def _press(self, settings: BatchSettings, prompt_id: str, mode: str) -> Batch | str | None:
        """A prompt the user queued: the batch to resume, NEW_PASS, or None (a duplicate)."""
        batch = self._registry.find(settings)
        created, client_id = bridge.prompt_created_and_client(prompt_id)
        if batch is not None and batch.phase == QUEUED and batch.stop_reason is not None:
            self._chain.cancel_queued(batch)  # stopped in the gap: its next image never runs
        if batch is not None and batch.going:
            batch.recent_prompts.append(prompt_id)  # a Cancel while this press runs is for the batch
            self._events.refused(settings, prompt_id, client_id, batch, "running")
            return None
        verdict = batch.is_echo_or_duplicate(created, client_id) if batch else None
        if verdict == "duplicate":
            self._events.refused(settings, prompt_id, client_id, batch, "queued_while_running")
            return None
        if verdict == "echo":
            assert batch is not None
            batch.ended_at = time.time()  # the frontend answers the refusal with another echo: refuse that too
            raise BatchError(batch.echo_refusal())
        self._prefetcher.discard(settings.key)
        if batch is None or settings.shared_job or not batch.resume_point(mode == CONTINUE):
            return NEW_PASS
        batch.begin_chain(prompt_id, created, client_id)
        log.info("node %s: resuming the batch on '%s' at image %d/%d", settings.node_id, settings.directory,
                 batch.state.next_index + 1, batch.state.total)
        return batch

    def _new_pass(self, settings: BatchSettings, start_index: int, prompt_id: str) -> Batch:
        try:
            batch = Batch.new_pass(settings, start_index, self.store)
        except SharedFolderError as exc:
            raise BatchError(str(exc)) from None
        created, client_id = bridge.prompt_created_and_client(prompt_id)
        with self._lock:
            self._registry.put(batch)
            batch.begin_chain(prompt_id, created, client_id)
            batch.save(self.store)
        return batch

    def _waiting(self, batch: Batch, left: int) -> None:
        with self._lock:
            if batch.waiting != left:
                batch.waiting = left
                self._events.status(batch)

    # ----- steering: the queue, the routes ----------------------------------------------------
    def on_queue_request(self, kind: str, body: dict) -> None:
        """Cancel, Clear queue or a deleted item, seen before ComfyUI acts on it."""
        with self._lock:
            going = [b for b in self._registry if b.going]
            if not going:
                return
            running, _ = bridge.queued_prompt_ids()
            adopt_presses(running, going)
            for batch, reason in batches_to_stop(kind, body, going, running):
                self._stop(batch, reason)

    def _stop(self, batch: Batch, reason: str) -> None:
        if batch.stop_reason is None:
            log.info("node %s: %s after %d images: the image in progress finishes, then the batch stops",
                     batch.settings.node_id, reason, batch.state.done)
        batch.request_stop(reason)
        if batch.phase == QUEUED:
            self._chain.cancel_queued(batch)
        self._events.status(batch)

    def status(self) -> list[dict[str, Any]]:
        """Every batch this server knows (in memory or on disk), newest first."""
        with self._lock:
            return self._registry.status_rows()

    def stop(self, node_id: str | None = None, workflow_id: str | None = None, all_servers: bool = False) -> list[str]:
        """Stop the running batches of node_id (None: all): the image in progress finishes, nothing
        more runs, a queued next image is taken out of the queue. all_servers: a shared batch stops
        on every server taking part (each after its current image). Returns the keys stopped."""
        with self._lock:
            keys = self._registry.keys_of(node_id, workflow_id)
            batches = [b for k in keys if (b := self._registry.get(k)) is not None]
            for batch in batches if all_servers else []:
                if batch.shared is not None:
                    batch.shared.request_stop(STOP_ALL)
            going = [b for b in batches if b.going]
            for batch in going:
                self._stop(batch, STOP_ALL if all_servers and batch.shared else STOP_BUTTON)
            return [b.key for b in going]

    def reset(self, node_id: str, workflow_id: str | None = None) -> list[str]:
        """Forget the position of node_id's batches: the next Queue starts at start_index."""
        with self._lock:
            keys = self._registry.keys_of(node_id, workflow_id)
            for key in keys:
                batch = self._registry.forget(key)
                if batch is not None and batch.shared is not None:
                    batch.shared.reset()  # the shared progress, for every server
                if batch is not None:
                    batch.detached = True  # before stopping it: nothing of it is saved again
                    self._stop(batch, "reset")
                self._prefetcher.discard(key)
        log.info("node %s: batch position forgotten (reset)", node_id)
        return keys

    # ----- questions from the nodes -------------------------------------------------------------
    def is_running(self, directory: str, filter_preset: str, custom_pattern: str, include_subfolders: bool,
                   sort_by: str) -> bool:
        """True when a batch with these settings is going: validation of its next prompt can skip the scan."""
        wanted = (directory, filter_preset, custom_pattern if filter_preset == "Custom" else "",
                  bool(include_subfolders), sort_by)
        with self._lock:
            return self._registry.is_running(wanted)

    def is_batch_input(self, path: str) -> bool:
        """True when path is one of the images of a batch this process knows (to warn before clobbering)."""
        with self._lock:
            return self._registry.has_input(path)

    def install_queue_hooks(self) -> None:
        """See Cancel, Clear queue and deletions before ComfyUI acts on them (call at import time)."""
        bridge.hook_queue_requests(self.on_queue_request)
        if not bridge.hook_task_done():
            log.warning("could not hook ComfyUI's task_done: clearing the history during a batch may stop it")

    def run_inputs(self, relative_path: str, filename: str, loader_node: str | None = None) -> list[RunInput]:
        """The input images of the run of this prompt's loader node loader_node (the node the
        saver's FILENAME is linked to), else of the loader whose first image is
        relative_path/filename, in the order of its IMAGE batch; [] when none (the saver then
        names the file itself). The link decides first: two loaders may load the same names."""
        loaders = self._running_loaders()
        rel_path = f"{relative_path}/{filename}" if relative_path else filename
        loader = next((lr for lr in loaders if lr.batch.settings.node_id == loader_node), None) or \
            next((lr for lr in loaders if lr.rel_path == rel_path), None)
        return loader.inputs() if loader is not None else []

    def loader_inputs(self) -> dict[str, list[RunInput]]:
        """The input images of each loader node of the running prompt, by node id, each list in the
        order of that loader's IMAGE batch (nodes that pair files with the images find theirs here)."""
        return {lr.batch.settings.node_id: lr.inputs() for lr in self._running_loaders()}

    def skip_input(self, source: RunInput, reason: str) -> bool:
        """A node cannot process source (a companion file is missing). True when its loader's
        error_handling is Skip on error: source's run (every image of it) is recorded skipped, with
        reason, when the prompt ends. False: the node must raise, which stops the batch (Stop on error)."""
        with self._lock:
            for lr in self._running_loaders():
                ours = lr.batch.key == source.batch_key and source.index in {i.index for i in lr.images}
                if ours and lr.error_policy == SKIP_ON_ERROR:
                    lr.skip_reason = lr.skip_reason or reason
                    return True
        return False

    def fenced(self, source: RunInput) -> bool:
        """Right before the saver writes source's result: False when another server owns it now."""
        return may_write(self._batch_of(source), source, self._lock)

    def result_saved(self, source: RunInput) -> bool:
        """The saver wrote source's result: a shared batch records the image done at once (True)."""
        return record_saved(self._batch_of(source), source, self._lock)

    def _batch_of(self, source: RunInput) -> Batch | None:
        return next((lr.batch for lr in self._running_loaders() if lr.batch.key == source.batch_key), None)

    def _running_loaders(self) -> list[LoaderRun]:
        prompt_id = bridge.current_prompt_id()
        with self._lock:
            run = self._chain.prompts.get(prompt_id) if prompt_id else None
            return list(run.loaders) if run else []


_controller: BatchController | None = None
_controller_lock = threading.Lock()


def controller() -> BatchController:
    """The process-wide controller (created on first use, inside a running ComfyUI)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = BatchController()
        return _controller
