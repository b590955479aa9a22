"""A run's IMAGE batch, written by the threads that decode its images (images_per_run > 1).

Turning k decoded images into one float32 batch is about as much work as decoding them (a 2048
px JPEG: ~17 ms to decode, ~10 ms to convert into fresh memory), and done on the prompt's
thread it was the step everything waited for. So each image of a scheduled run is converted on
the pool thread that decoded it, straight into its slice of the run's batch, while the workflow
still works on the previous run; the prompt then hands over a view of the finished batch. Only
for ComfyUI's default tensors (CPU, float32), and only for images of POOL_WRITE_MIN_PIXELS and
more: small ones convert in a fraction of their decode, and the pool does better decoding the
next run (measured: 256 px PNGs, K=16, 1.0 ms per image written on the prompt's thread, 1.1-1.4
written on the pool). A slice is written once, by whoever claims it
first; a run whose images do not fill consecutive slices of one batch with their own pixels
(another size came first, a file changed while it was read) is converted as before
(tensors.to_batch_tensors), so nothing stale or foreign can come out.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from .decode import DecodedImage
from .host_buffers import host_buffers

# Below this many pixels an image's slice is written on the prompt's thread (see above).
POOL_WRITE_MIN_PIXELS = 512 * 1024
# A run's batch larger than this (IMAGE and MASK) is not allocated ahead: it is sized for every
# image the run may hold, at the first decoded image's size, which can be far more than the run
# turns out to need (a huge image before small ones ends its run at once).
MAX_BATCH_BYTES = 4 << 30


def wanted(device: Any, dtype: Any) -> bool:
    """Whether runs for this tensor target are written by the decoding threads (CPU float32)."""
    return (device is None or torch.device(device).type == "cpu") and dtype in (None, torch.float32)


def worth_writing_ahead(decoded: DecodedImage) -> bool:
    return decoded.height * decoded.width >= POOL_WRITE_MIN_PIXELS


def write_slice(image: np.ndarray, mask: np.ndarray, decoded: DecodedImage) -> None:
    """One image into its slices [H,W,3] and [H,W] (mask zeros already): one pass each, the same
    float32 values as torch's division (a gray source is broadcast to RGB by the same write).
    numpy, not torch: torch's parallel loops stall when the cores are busy (the next run decoding
    beside it, other processes), which made this step 3x slower on a loaded 2-core machine."""
    scale = np.float32(decoded.scale)
    np.divide(decoded.color, scale, out=image, dtype=np.float32)
    if decoded.alpha is not None:
        np.divide(decoded.alpha, scale, out=mask, dtype=np.float32)
        np.subtract(np.float32(1.0), mask, out=mask)


class RunBatch:
    """IMAGE [n,H,W,3] and MASK [n,H,W] of one scheduled run of n images; thread-safe.

    Allocated when its first image arrives (that image's size), filled slice by slice. Each slice
    belongs to the first decoded image that claims it; an image of another size claims none, and
    no slice after it is written (the run ends there: those images start the next run, which gets
    its own batch, so a folder of alternating sizes does not fill batches nobody uses). A
    batch over MAX_BATCH_BYTES, or one the memory refuses, is not made: nothing is written here,
    and the run is converted as before, at its real size.
    """

    def __init__(self, indices: list[int]) -> None:
        self._positions = {index: position for position, index in enumerate(indices)}
        self._lock = threading.Lock()
        self._image: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._owners: dict[int, DecodedImage] = {}  # position -> the pixels written (or being written) there
        self._written: set[int] = set()
        self._unusable = False  # the batch could not be allocated
        self._end = len(indices)  # the first position holding an image of another size

    def fill(self, index: int, decoded: DecodedImage) -> bool:
        """Write decoded into image index's slice; True when that slice holds exactly these pixels."""
        with self._lock:
            position = self._positions.get(index)
            if position is None:
                return False
            owner = self._owners.get(position)
            if owner is not None:
                return owner is decoded and position in self._written
            if position > self._end:
                return False
            if self._unusable:
                return False
            if self._image is None:
                shape = (len(self._positions), decoded.height, decoded.width)
                try:
                    if 16 * shape[0] * shape[1] * shape[2] > MAX_BATCH_BYTES:
                        raise MemoryError
                    self._image = host_buffers.empty((*shape, 3), np.float32)
                    self._mask = np.zeros(shape, np.float32)
                except MemoryError:
                    self._image = self._mask = None
                    self._unusable = True
                    return False
            elif self._image.shape[1:3] != (decoded.height, decoded.width):
                self._end = min(self._end, position)
                return False
            assert self._mask is not None
            self._owners[position] = decoded
            image, mask = self._image[position], self._mask[position]
        write_slice(image, mask, decoded)  # outside the lock: each slice has one writer
        with self._lock:
            self._written.add(position)
        return True

    def tensors(self, members: list[tuple[int, DecodedImage]]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The run (index, pixels) as views of this batch, writing on this thread the slices no one
        has claimed; None unless they fill consecutive slices with exactly these pixels."""
        positions = [self._positions.get(index) for index, _ in members]
        if None in positions or positions != list(range(positions[0], positions[0] + len(positions))):
            return None
        if not all(self.fill(index, decoded) for index, decoded in members):
            return None
        assert self._image is not None and self._mask is not None and positions[0] is not None
        rows = slice(positions[0], positions[0] + len(members))
        return torch.from_numpy(self._image[rows]), torch.from_numpy(self._mask[rows])
