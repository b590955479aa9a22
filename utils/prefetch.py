"""Decode the next image of a batch while the workflow still works on the current one.

One image ahead per batch, on one background thread: memory stays bounded, and the next
run of the loader usually finds its image ready. A prefetched image is used only if it is
the image asked for and its file has not changed since it was read; otherwise it is thrown
away and decoded again, so a stale image can never come out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from .image_decode import DecodedImage, decode_image, to_tensors


@dataclass
class PreparedImage:
    """A decoded image and, once asked for, its tensors for one device/dtype."""

    decoded: DecodedImage
    _tensors: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _target: tuple[str, Any] | None = None

    def tensors(self, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        target = (str(device), dtype)
        if self._tensors is None or self._target != target:
            self._tensors, self._target = to_tensors(self.decoded, device, dtype), target
        return self._tensors


def file_signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def prepare(path: str, device: Any = None, dtype: torch.dtype | None = None) -> PreparedImage:
    """Decode path; convert to tensors too when the target is the CPU (cheap to hold)."""
    prepared = PreparedImage(decode_image(path))
    if device is not None and torch.device(device).type == "cpu":
        prepared.tensors(device, dtype or torch.float32)
    return prepared


@dataclass
class _Pending:
    index: int
    path: str
    signature: tuple[int, int] | None
    future: Future


class Prefetcher:
    """At most one image ahead per batch key; thread-safe."""

    def __init__(self, prepare_fn: Callable[..., PreparedImage] = prepare) -> None:
        self._prepare = prepare_fn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch")
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def schedule(self, key: str, index: int, path: str, device: Any = None, dtype: Any = None) -> None:
        """Start decoding image index of batch key (replacing whatever was prefetched for it)."""
        signature = file_signature(path)
        future = self._executor.submit(self._prepare, path, device, dtype)
        with self._lock:
            old = self._pending.pop(key, None)
            self._pending[key] = _Pending(index, path, signature, future)
        if old is not None:
            old.future.cancel()

    def take(self, key: str, index: int, path: str) -> PreparedImage | None:
        """The prefetched image if it is this one and still current, else None (decode it yourself).

        A decode error of a still-current file is raised here, as a direct decode would.
        """
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is None or pending.index != index or pending.path != path:
            if pending is not None:
                pending.future.cancel()
            return None
        if pending.signature is None or file_signature(path) != pending.signature:
            pending.future.cancel()
            return None
        return pending.future.result()

    def discard(self, key: str) -> None:
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is not None:
            pending.future.cancel()

    def pending_keys(self) -> list[str]:
        with self._lock:
            return list(self._pending)
