"""Take a batch's next image: the prefetched one when it is still current, else decode it now.

Under Skip on error, an unreadable file is recorded as skipped and the next one is tried.
Decoding happens without the controller's lock; only this prompt's thread moves next_index
while the prompt runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import log
from ..comfy import bridge
from ..images.decode import DecodeError
from ..images.prefetch import Prefetcher, PreparedImage
from .batch import STOP_CANCEL, Batch, BatchError
from .prompt_runs import SKIP_ON_ERROR, LoadedImage

__all__ = ["BatchError", "WaitStoppedError", "claim_or_wait", "pick_image"]

WAIT_POLL_S = 0.5  # how often a server with nothing to take looks at the others' images again


class WaitStoppedError(RuntimeError):
    """Stop or Cancel came while this server waited for images that other servers hold."""


def pick_image(
    batch: Batch,
    error_policy: str,
    prefetcher: Prefetcher,
    prepare: Callable[..., PreparedImage],
    target: tuple[Any, ...],
    lock: threading.RLock,
    on_wait: Callable[[int], None] = lambda left: None,
) -> LoadedImage | None:
    """The image at next_index (or, skipping unreadable ones, the next readable one); None when
    nothing readable is left. Raises DecodeError under Stop on error. A shared batch takes the
    next image no server has claimed (JobStoppedError / JobGoneError: stopped or reset elsewhere;
    ClaimsFolderError), waiting while other servers hold every image left (on_wait(images left))."""
    if batch.shared is not None:
        return _pick_shared(batch, error_policy, prepare, target, lock, on_wait)
    entries = batch.entries
    while batch.state.next_index < len(entries):
        index = batch.state.next_index
        entry = entries[index]
        full_path = batch.full_path(index)
        try:
            prepared = prefetcher.take(batch.key, index, full_path, *target[2:])
            if prepared is None:
                prepared = prepare(full_path, *target)
        except DecodeError as exc:
            if error_policy != SKIP_ON_ERROR:
                raise
            log.warning("node %s: skipping %s: %s", batch.settings.node_id, entry.rel_path, exc.reason)
            with lock:
                batch.record_skip(index, entry.rel_path, exc.reason)
            continue
        return LoadedImage(entry, full_path, index, len(entries), prepared)
    return None


def _pick_shared(batch: Batch, error_policy: str, prepare: Callable[..., PreparedImage], target: tuple[Any, ...],
                 lock: threading.RLock, on_wait: Callable[[int], None]) -> LoadedImage | None:
    assert batch.shared is not None
    while True:
        claim = claim_or_wait(batch, lock, on_wait)
        if claim is None:
            return None
        index, entry = claim.index, batch.entries[claim.index]
        full_path = batch.full_path(index)
        try:
            prepared = prepare(full_path, *target)
        except DecodeError as exc:
            if error_policy != SKIP_ON_ERROR:
                batch.give_back(index, f"{entry.rel_path}: {exc.reason}", entry.rel_path)
                raise
            log.warning("node %s: skipping %s: %s", batch.settings.node_id, entry.rel_path, exc.reason)
            with lock:
                batch.record_skip(index, entry.rel_path, exc.reason)
            continue
        return LoadedImage(entry, full_path, index, len(batch.entries), prepared)


def claim_or_wait(batch: Batch, lock: threading.RLock, on_wait: Callable[[int], None]) -> Any:
    """The next claim; None only when every image of the pass has a done record. While the images
    left are all held by other servers, wait for them (a dead server's lease runs out and its image
    is taken over here): a server whose part is done does not end its chain as "done" early."""
    assert batch.shared is not None
    waited = False
    while (claim := batch.shared.claim_next()) is None:
        progress = batch.shared.progress()
        left = progress["total"] - progress["done"] - progress["skipped"]
        if left <= 0 and batch.shared.is_complete():
            break
        with lock:
            if bridge.interrupt_pending() and batch.stop_reason is None:
                batch.request_stop(STOP_CANCEL)
            if batch.stop_reason is not None:
                raise WaitStoppedError(batch.stop_reason)
        if not waited:
            log.info("node %s: waiting for %d image%s on other servers", batch.settings.node_id, left,
                     "s" if left != 1 else "")
        waited = True
        on_wait(max(left, 1))
        time.sleep(min(WAIT_POLL_S, batch.shared.lease_s / 4))
    if waited:
        on_wait(0)
    return claim
