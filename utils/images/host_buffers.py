"""Reuse the memory of IMAGE tensors that ComfyUI has let go of, for the next ones of that size.

A 2048 px float32 image is 50 MB, a run of 8 of them 400 MB. Written into fresh memory, every
page is faulted in and zeroed by the kernel first, and where Linux backs such arrays with huge
pages it sometimes stops to compact memory for them: measured on the project's 2-core machine,
8 slices of 2048 px converted on two threads took 20-27 ms into memory used before, 26-39 ms
into fresh memory, and 550-760 ms in the rounds where the kernel compacted (two of four). A
batch makes images of one size over and over, so each buffer is kept after its image is gone
and handed out again for the next image of that size.

A buffer is handed out again only when nothing references it but this pool: every tensor made
from it (torch.from_numpy, its views, .numpy() of those) holds a reference to the array, so
its reference count says whether ComfyUI, a node or a cache still holds any part of it. The
buffers are forgotten a few seconds after a batch ends (trim), and those of a size not asked for
lately when images of other sizes come.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

# Buffers kept per shape: what a batch holds at once (the image in ComfyUI's cache, the one being
# handed over, two decoded ahead) is four; more are made when needed, but not kept.
MAX_PER_SHAPE = 4
# Sizes (shape and dtype) kept at once: a folder of two alternating sizes still reuses both.
MAX_SHAPES = 2
# Below this a fresh array costs nothing worth saving (and small arrays come from malloc's heap).
MIN_BYTES = 4 << 20
# After a batch ends its buffers are kept this long for the next one (Queue pressed again, the
# next pass), then given back to the system unless a batch asked for one in the meantime.
TRIM_GRACE_S = 10.0

Key = tuple[tuple[int, ...], str]


def _references(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


# What _references reports for an array held by nothing but its list (interpreters differ).
_UNUSED = _references([np.empty(1)], 0)


class HostBuffers:
    """Float host arrays by shape and dtype, reused once nothing but this pool references them;
    thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[Key, list[np.ndarray]] = {}  # the most recently asked size last
        self._last_asked = self._ended = 0.0
        self._timer: threading.Timer | None = None

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised array of shape and dtype: a released one of that size, or a new one."""
        dt = np.dtype(dtype)
        if int(np.prod(shape)) * dt.itemsize < MIN_BYTES:
            return np.empty(shape, dt)
        key = (tuple(int(n) for n in shape), dt.str)
        with self._lock:
            self._last_asked = time.monotonic()
            buffers = self._kept.pop(key, [])
            self._kept[key] = buffers
            for old in list(self._kept)[:-MAX_SHAPES]:
                del self._kept[old]  # those in use are freed when released, as any array
            for i in range(len(buffers)):
                if _references(buffers, i) == _UNUSED:
                    return buffers[i]  # returned before the lock is let go: taken for everyone else
        fresh = np.empty(key[0], dt)  # outside the lock: a first touch can take long
        with self._lock:
            buffers = self._kept.get(key)
            if buffers is not None and len(buffers) < MAX_PER_SHAPE:
                buffers.append(fresh)
        return fresh

    def trim(self, grace: float = TRIM_GRACE_S) -> None:
        """A batch ended: in grace seconds forget every buffer, unless a batch has asked for one
        since (those unused go back to the system then, the others when their last tensor is gone)."""
        with self._lock:
            self._ended = time.monotonic()
            if self._timer is None:
                self._timer = threading.Timer(grace, self._forget_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _forget_if_idle(self) -> None:
        with self._lock:
            self._timer = None
            if self._last_asked <= self._ended:
                self._kept.clear()

    def kept(self) -> int:
        """How many buffers are kept, in use or not."""
        with self._lock:
            return sum(len(buffers) for buffers in self._kept.values())


host_buffers = HostBuffers()
