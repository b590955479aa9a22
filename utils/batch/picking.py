"""Take a batch's next image: the prefetched one when it is still current, else decode it now.

Under Skip on error, an unreadable file is recorded as skipped and the next one is tried.
Decoding happens without the controller's lock; only this prompt's thread moves next_index
while the prompt runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import log
from ..images.decode import DecodeError
from ..images.prefetch import Prefetcher, PreparedImage
from .batch import Batch, BatchError
from .prompt_runs import SKIP_ON_ERROR, LoadedImage

__all__ = ["BatchError", "pick_image"]


def pick_image(
    batch: Batch,
    error_policy: str,
    prefetcher: Prefetcher,
    prepare: Callable[..., PreparedImage],
    target: tuple[Any, ...],
    lock: threading.RLock,
) -> LoadedImage | None:
    """The image at next_index (or, skipping unreadable ones, the next readable one); None when
    nothing readable is left. Raises DecodeError under Stop on error. A shared batch takes the
    next image no server has claimed (JobStoppedError / JobGoneError: stopped or reset elsewhere)."""
    if batch.shared is not None:
        return _pick_shared(batch, error_policy, prepare, target, lock)
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
                 lock: threading.RLock) -> LoadedImage | None:
    assert batch.shared is not None
    while (claim := batch.shared.claim_next()) is not None:
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
    return None
