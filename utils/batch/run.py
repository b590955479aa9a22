"""images_per_run > 1: one prompt takes a run of up to K consecutive images of one size, loaded
as one IMAGE batch [k, H, W, 3].

A run is filled in the batch's order from its position: the first readable image sets the size,
an image of another size ends the run (it is kept, decoded, as the first of the next run), and
under Skip on error an unreadable image is passed over and the run filled with the next ones
(it is recorded skipped together with the run, so a Cancel or a crash in the run loses nothing).
The position moves only when the run's prompt has finished (prompt_runs.LoaderRun), so a crash
redoes at most one run. A shared batch claims the run's images one claim each, all at the run's
start, so fencing and done records stay per image; a claim whose image has another size is
given back. The images of a run are decoded on a small pool (prefetch.RUN_DECODE_THREADS), and
the next run is decoded there while the current one works; the prompt's own thread decodes the
images the pool has not started yet instead of waiting for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import log
from ..images.decode import DecodeError
from ..images.prefetch import PREFETCH_AHEAD, Prefetcher, PreparedImage, Signature, decode_only, file_signature
from ..images.run_batch import wanted
from .batch import Batch
from .picking import claim_or_wait
from .prompt_runs import SKIP_ON_ERROR, LoadedImage


@dataclass
class HeldImage:
    """An image decoded for a run that its size ended: the first image of the batch's next run."""

    index: int
    path: str
    color_profile: str
    signature: Signature
    prepared: PreparedImage


def _size(prepared: PreparedImage) -> tuple[int, int]:
    return prepared.decoded.height, prepared.decoded.width


def _take(batch: Batch, index: int, path: str, prefetcher: Prefetcher, color_profile: str,
          decode: Callable[..., PreparedImage]) -> tuple[PreparedImage, Signature | None]:
    """Image index decoded: the one kept from the last run, the prefetched one, or decoded now."""
    signature = file_signature(path)  # before any read: what a kept image is checked against later
    held, batch.held_image = batch.held_image, None
    if (held is not None and (held.index, held.path, held.color_profile) == (index, path, color_profile)
            and signature is not None and held.signature == signature):
        return held.prepared, signature
    prepared = prefetcher.take(batch.key, index, path, color_profile, steal=True)
    return (prepared if prepared is not None else decode(path, None, None, color_profile)), signature


def pick_run(batch: Batch, size: int, error_policy: str, prefetcher: Prefetcher, color_profile: str,
             lock: threading.RLock, on_wait: Callable[[int], None] = lambda left: None,
             decode: Callable[..., PreparedImage] = decode_only, into_batch: bool = False) -> LoadedImage | None:
    """The next run of up to size images (the first, with the others in .more); None when nothing
    readable is left. Raises DecodeError under Stop on error (a shared batch gives the run back).
    into_batch: the pool writes each image into the run's batch tensor as it decodes it."""
    if batch.shared is not None:
        return _pick_shared_run(batch, size, error_policy, prefetcher, color_profile, lock, on_wait, decode,
                                into_batch)
    entries, index = batch.entries, batch.state.next_index
    kept = batch.held_image is not None and batch.held_image.index == index  # decoded already
    run = range(index, min(index + size, len(entries)))
    prefetcher.schedule_run(batch.key, [(i, batch.full_path(i)) for i in run[kept:]], color_profile,
                            list(run) if into_batch else None)
    members: list[LoadedImage] = []
    unreadable: list[tuple[int, str, str]] = []
    while index < len(entries) and len(members) < size:
        entry, path = entries[index], batch.full_path(index)
        try:
            prepared, signature = _take(batch, index, path, prefetcher, color_profile, decode)
        except DecodeError as exc:
            if error_policy != SKIP_ON_ERROR:
                raise
            log.warning("node %s: skipping %s: %s", batch.settings.node_id, entry.rel_path, exc.reason)
            unreadable.append((index, entry.rel_path, exc.reason))
            index += 1
            continue
        if members and _size(prepared) != _size(members[0].image):
            if signature is not None:
                batch.held_image = HeldImage(index, path, color_profile, signature, prepared)
            break
        members.append(LoadedImage(entry, path, index, len(entries), prepared))
        index += 1
    if not members:
        with lock:
            for skipped in unreadable:
                batch.record_skip(*skipped)
        return None
    batch.run_images = len(members)
    return LoadedImage(*_first_fields(members[0]), more=members[1:], unreadable=unreadable)


def _first_fields(first: LoadedImage) -> tuple[Any, ...]:
    return first.entry, first.full_path, first.index, first.total, first.image


def _pick_shared_run(batch: Batch, size: int, error_policy: str, prefetcher: Prefetcher, color_profile: str,
                     lock: threading.RLock, on_wait: Callable[[int], None],
                     decode: Callable[..., PreparedImage], into_batch: bool) -> LoadedImage | None:
    """Claim up to size images at once (waiting only for the first), decode them on the run pool,
    keep those of the first readable image's size in order and give the rest back."""
    assert batch.shared is not None
    while True:
        first = claim_or_wait(batch, lock, on_wait)
        if first is None:
            return None
        claims = [first.index]
        try:
            while len(claims) < size and (claim := batch.shared.claim_next()) is not None:
                claims.append(claim.index)
        except Exception:
            for index in claims:
                batch.give_back(index)
            raise
        prefetcher.schedule_run(batch.key, [(i, batch.full_path(i)) for i in claims], color_profile,
                                claims if into_batch else None)
        try:
            members = _decode_claims(batch, claims, error_policy, prefetcher, color_profile, lock, decode)
        except DecodeError:
            raise  # its claims are given back already
        except Exception:  # unexpected: the claims go back at once, not when their leases run out
            for index in claims:
                batch.give_back(index)
            prefetcher.discard(batch.key)
            raise
        if members:
            batch.run_images = len(members)
            return LoadedImage(*_first_fields(members[0]), more=members[1:])


def _decode_claims(batch: Batch, claims: list[int], error_policy: str, prefetcher: Prefetcher, color_profile: str,
                   lock: threading.RLock, decode: Callable[..., PreparedImage]) -> list[LoadedImage]:
    members: list[LoadedImage] = []
    for n, index in enumerate(claims):
        entry, path = batch.entries[index], batch.full_path(index)
        try:
            prepared = prefetcher.take(batch.key, index, path, color_profile, steal=True) or \
                decode(path, None, None, color_profile)
        except DecodeError as exc:
            if error_policy != SKIP_ON_ERROR:
                batch.give_back(index, f"{entry.rel_path}: {exc.reason}", entry.rel_path)
                for other in [m.index for m in members] + claims[n + 1:]:
                    batch.give_back(other)
                prefetcher.discard(batch.key)
                raise
            log.warning("node %s: skipping %s: %s", batch.settings.node_id, entry.rel_path, exc.reason)
            with lock:
                batch.record_skip(index, entry.rel_path, exc.reason)
            continue
        if members and _size(prepared) != _size(members[0].image):
            for other in claims[n:]:  # another size: given back, for the next run (here or elsewhere)
                batch.give_back(other)
            prefetcher.discard(batch.key)
            break
        members.append(LoadedImage(entry, path, index, len(batch.entries), prepared))
    return members


def prefetch_after(batch: Batch, loaded: LoadedImage, size: int, prefetcher: Prefetcher,
                   target: tuple[Any, ...]) -> None:
    """Start decoding what the batch takes next while this prompt works: the next PREFETCH_AHEAD
    images, or the next run (a single server only: a shared batch does not know its next images
    before it claims them)."""
    if batch.shared is not None:
        return
    last = max([m.index for m in loaded.members] + [u[0] for u in loaded.unreadable])
    if size == 1:
        for ahead in range(last + 1, min(last + 1 + PREFETCH_AHEAD, len(batch.entries))):
            prefetcher.schedule(batch.key, ahead, batch.full_path(ahead), *target)
        return
    held = batch.held_image
    first = held.index if held is not None else last + 1
    run = range(first, min(first + size, len(batch.entries)))
    prefetcher.schedule_run(batch.key, [(i, batch.full_path(i)) for i in run[held is not None:]], target[2],
                            list(run) if wanted(target[0], target[1]) else None)
