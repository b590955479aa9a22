"""Decode the next image of a batch while the workflow still works on the current one.

One image ahead per batch, on one background thread: memory stays bounded, and the next run
of the loader finds its IMAGE and MASK finished (decoded, converted, on ComfyUI's device and
dtype), so all it does is hand them over, and the decode overlaps ComfyUI's own per-prompt
work. A prefetched image is used only if it is the image asked for and its file is unchanged
by any means since it was read (see file_signature); otherwise it is thrown away and decoded
again, so a stale image can never come out.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import torch

from .color import CONVERT_TO_SRGB
from .decode import DecodedImage, decode_image
from .decode_processes import DecodeProcesses, register
from .run_batch import POOL_WRITE_MIN_PIXELS, RunBatch, worth_writing_ahead
from .tensors import to_tensors

# A change inside the file system's timestamp granularity can leave every stat field equal (a
# rewrite in the same clock tick). As git does for its index ("racy git"), a file whose
# change time is this close to the moment it was looked at is not trusted: decoded again.
# 2 s covers the coarsest common timestamps (FAT, SMB); Linux ticks are <= 10 ms.
RACY_WINDOW_NS = 2_000_000_000
# How many images ahead of the one being processed the loader has decoded: two, so that both
# cores of a small machine decode while ComfyUI runs the current prompt.
PREFETCH_AHEAD = 2
# images_per_run > 1 decodes a run's images on this many threads (the machine's cores, up to 8):
# large images then approach the machine's decode rate instead of one core's.
RUN_DECODE_THREADS = max(2, min(8, os.cpu_count() or 2))
# images_per_run > 1 decodes runs of small images (below POOL_WRITE_MIN_PIXELS) in worker processes
# (utils/images/decode_processes.py), one per core up to 4 (measured on 2 cores: 256 px PNGs, K=16,
# 0.77-0.91 ms per image with two, against 1.25-1.31 on threads). BATCH_IMAGE_DECODE_PROCESSES=N sets
# how many; 0 keeps every decode on threads.
DECODE_PROCESSES_ENV = "BATCH_IMAGE_DECODE_PROCESSES"


def decode_process_count() -> int:
    raw = os.environ.get(DECODE_PROCESSES_ENV, "").strip()
    if raw.isdigit():
        return min(int(raw), 8)
    return max(1, min(4, os.cpu_count() or 2))


# The prefetch threads run at this nice level (Linux): decoding ahead must never slow ComfyUI's
# own threads (the prompt worker, the server answering the next POST), only use what they leave.
PREFETCH_NICE = 10
# Windows' st_ctime is the creation time, not the change time: an in-place rewrite that puts the
# old mtime back leaves every stat field as it was. There the content is compared too.
_CONTENT_CHECK = os.name == "nt"


@dataclass
class PreparedImage:
    """A decoded image and, once asked for, its tensors for one device/dtype."""

    decoded: DecodedImage
    run_batch: RunBatch | None = None  # images_per_run: the run batch its slice was written into
    _tensors: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _target: tuple[str, Any] | None = None

    def tensors(self, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        target = (str(torch.device(device)), dtype)
        if self._tensors is None or self._target != target:
            self._tensors, self._target = to_tensors(self.decoded, device, dtype), target
        return self._tensors


Signature = tuple[Any, ...]


def _digest(path: str) -> bytes:
    with open(path, "rb") as fh:
        return hashlib.blake2b(fh.read(), digest_size=16).digest()


def file_signature(path: str) -> Signature | None:
    """What identifies this version of the file: device, inode, size, mtime and change time.

    Replacing the file in any way changes one of them: a rename over it (rsync, most editors and
    savers) a new inode; an in-place rewrite, even one that restores size and mtime (cp -p,
    touch -r), the change time, which no program can set. None when the file cannot be
    stat'ed, or when its change time is too recent to tell a later change in the same tick.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_ctime_ns >= time.time_ns() - RACY_WINDOW_NS:
        return None
    signature: Signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _CONTENT_CHECK:
        try:
            signature += (_digest(path),)
        except OSError:
            return None
    return signature


def _lower_priority() -> None:
    """Nice the calling thread only (Linux treats a thread id as a process id here)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PREFETCH_NICE)
        except OSError:
            pass


def prepare(path: str, device: Any = None, dtype: torch.dtype | None = None,
            color_profile: str = CONVERT_TO_SRGB) -> PreparedImage:
    """Decode path in the colour space color_profile asks for and build its tensors for the
    target (CPU float32 when none is given)."""
    prepared = PreparedImage(decode_image(path, color_profile))
    prepared.tensors(device if device is not None else "cpu", dtype or torch.float32)
    return prepared


def decode_only(path: str, device: Any = None, dtype: Any = None, color_profile: str = CONVERT_TO_SRGB,
                into: tuple[RunBatch, int] | None = None) -> PreparedImage:
    """Decode path for a run (images_per_run > 1) and, given into (its run's batch and its index),
    write its slice of that batch right away, on this thread (utils/images/run_batch.py)."""
    prepared = PreparedImage(decode_image(path, color_profile))
    if into is not None and worth_writing_ahead(prepared.decoded):
        run_batch, index = into
        if run_batch.fill(index, prepared.decoded):
            prepared.run_batch = run_batch
    return prepared


@dataclass
class _Pending:
    path: str
    target: tuple[Any, Any, str]  # device, dtype, colour profile mode
    signature: Signature
    future: Future


class Prefetcher:
    """Up to `depth` images ahead per batch key, decoded by as many threads; thread-safe.

    The caller schedules the images it will ask for next (one or more indices ahead of the one
    it just took); each is decoded once and handed over once. Two threads let the two cores of a
    small machine decode two images at once while ComfyUI runs the current prompt.
    """

    def __init__(self, prepare_fn: Callable[..., PreparedImage] = prepare, depth: int = PREFETCH_AHEAD) -> None:
        self._prepare = prepare_fn
        self._depth = max(1, depth)
        self._executor = ThreadPoolExecutor(
            max_workers=self._depth, thread_name_prefix="batch-prefetch", initializer=_lower_priority
        )
        self._pending: dict[str, dict[int, _Pending]] = {}
        self._lock = threading.Lock()
        self._run_executor: ThreadPoolExecutor | None = None  # made when a batch first uses images_per_run
        self._pixels: dict[str, int] = {}  # batch key -> pixels of the last image taken (picks the decoder)
        count = decode_process_count()
        self._processes = register(DecodeProcesses(
            count, PreparedImage, lambda path, mode: decode_only(path, None, None, mode),
            lambda work: self._run_pool().submit(work))) if count else None

    def _run_pool(self) -> ThreadPoolExecutor:
        """The run pool (made on first use). Lock-free once made: a decode process that cannot take
        an image hands it to this pool from inside schedule_run, which holds the lock."""
        if self._run_executor is not None:
            return self._run_executor
        with self._lock:
            if self._run_executor is None:
                self._run_executor = ThreadPoolExecutor(
                    max_workers=RUN_DECODE_THREADS, thread_name_prefix="batch-run-decode",
                    initializer=_lower_priority)
            return self._run_executor

    def _in_processes(self, key: str) -> bool:
        """A run of small images (as the batch's last one was) goes to the decode processes."""
        small = self._pixels.get(key, POOL_WRITE_MIN_PIXELS) < POOL_WRITE_MIN_PIXELS
        return small and self._processes is not None and self._processes.available()

    def schedule_run(self, key: str, images: list[tuple[int, str]], color_profile: str = CONVERT_TO_SRGB,
                     run_indices: list[int] | None = None) -> None:
        """Start decoding the images (index, path) of a run of batch key on the run pool, those not
        already on their way; images of the key behind the first are dropped. Each is then handed
        over by take(), as one image ahead is. run_indices (all of the run's images, also one
        decoded already): each image is also written into its slice of that run's batch, unless
        some of them are on their way already (into an earlier batch: a run scheduled before, or
        a window sliding by one image when every run is one image)."""
        if not images:
            return
        target = (None, None, color_profile)
        run_batch = RunBatch(run_indices) if run_indices else None
        signatures = [file_signature(path) for _, path in images]  # before the reads
        pool, processes = self._run_pool(), self._processes if self._in_processes(key) else None
        with self._lock:
            slots = self._pending.setdefault(key, {})
            first = images[0][0]
            dropped = [slots.pop(i) for i in list(slots) if i < first]
            if any(slots.get(index) is not None for index, _ in images):
                run_batch = None  # some of the run go to an earlier batch: this one would only hold strays
            for (index, path), signature in zip(images, signatures, strict=True):
                same = slots.get(index)
                if same is not None and (same.path, same.target[2], same.signature) == (path, color_profile,
                                                                                       signature):
                    continue
                if same is not None:
                    dropped.append(slots.pop(index))
                if signature is not None:
                    into = (run_batch, index) if run_batch is not None else None
                    future = processes.submit(path, color_profile) if processes is not None else \
                        pool.submit(decode_only, path, *target, into)
                    slots[index] = _Pending(path, target, signature, future)
            if not slots:
                del self._pending[key]
        for old in dropped:
            old.future.cancel()

    def schedule(self, key: str, index: int, path: str, device: Any = None, dtype: Any = None,
                 color_profile: str = CONVERT_TO_SRGB) -> None:
        """Start decoding image index of batch key, unless it is already on its way.

        Images of the key more than `depth` - 1 places behind index are dropped, so at most
        `depth` are held per key. A file that cannot be trusted to be unchanged later (see
        file_signature) is not prefetched: take() would throw the result away anyway.
        """
        signature = file_signature(path)  # before the read: any later change shows at take()
        target = (device, dtype, color_profile)
        with self._lock:
            slots = self._pending.setdefault(key, {})
            same = slots.get(index)
            if same is not None and (same.path, same.target, same.signature) == (path, target, signature):
                return
            dropped = [slots.pop(i) for i in list(slots) if i == index or i <= index - self._depth]
            if signature is not None:
                future = self._executor.submit(self._prepare, path, *target)
                slots[index] = _Pending(path, target, signature, future)
            if not slots:
                del self._pending[key]
        for old in dropped:
            old.future.cancel()

    def take(self, key: str, index: int, path: str, color_profile: str = CONVERT_TO_SRGB,
             steal: bool = False) -> PreparedImage | None:
        """The prefetched image if it is this one, in this colour mode, and still current, else
        None (decode it yourself). steal: also None when its decode has not started yet (the
        caller's thread decodes it rather than wait for a busy pool).

        Images of the key behind index are dropped; those ahead stay. A decode error of a
        still-current file is raised here, as a direct decode would.
        """
        with self._lock:
            slots = self._pending.get(key, {})
            pending = slots.pop(index, None)
            dropped = [slots.pop(i) for i in list(slots) if i < index]
            if not slots:
                self._pending.pop(key, None)
        for old in dropped:
            old.future.cancel()
        if pending is None:
            return None
        if pending.path != path or pending.target[2] != color_profile or file_signature(path) != pending.signature:
            pending.future.cancel()
            return None
        if steal and pending.future.cancel():
            return None
        prepared = self._result(pending.future)
        self._pixels[key] = prepared.decoded.height * prepared.decoded.width
        return prepared

    def _result(self, future: Future) -> PreparedImage:
        """future's image; while waiting, a decode process that has hung is killed (its images are
        then decoded on threads, which resolves future)."""
        while True:
            try:
                return future.result(timeout=1.0)
            except FutureTimeout:
                if self._processes is not None:
                    self._processes.kill_hung()

    def discard(self, key: str) -> None:
        with self._lock:
            slots = self._pending.pop(key, {})
        for old in slots.values():
            old.future.cancel()

    def pending_keys(self) -> list[str]:
        with self._lock:
            return list(self._pending)
