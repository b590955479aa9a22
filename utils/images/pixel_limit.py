"""The decompression-bomb guard: Pillow's limit, or the one BATCH_IMAGE_MAX_PIXELS sets.

Pillow refuses, inside Image.open and again while loading, any image of more than twice its
global Image.MAX_IMAGE_PIXELS (about 179 MP), whatever the caller allows. To really allow a
bigger limit (or none, with 0), that global is raised only while the pack decodes such an
image, and put back after; the pack checks its own limit itself, before decoding.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from PIL import Image

MAX_PIXELS_ENV = "BATCH_IMAGE_MAX_PIXELS"

_lock = threading.Lock()
_lifted = 0  # decodes in progress with Pillow's limit raised
_saved: int | None = None  # Pillow's limit before the first of them
_set: int | None = None  # what the pack set it to


def max_pixels() -> int | None:
    """Pixel limit in force: BATCH_IMAGE_MAX_PIXELS (0 or less: None, no limit), else Pillow's."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels (0 = no limit).") from None
        return None if value <= 0 else value
    return Image.MAX_IMAGE_PIXELS


def describe_limit(limit: int) -> str:
    """Where the limit in force comes from, for an error message."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    source = f"{MAX_PIXELS_ENV}={raw}" if raw else f"Pillow's default; {MAX_PIXELS_ENV} is not set"
    return f"the limit of {limit:,} pixels ({source})"


def too_many_pixels(width: int, height: int, limit: int | None) -> str | None:
    """The reason to refuse a width x height image under limit, or None when it is allowed."""
    if limit is None or width * height <= limit:
        return None
    return refusal(f"{width}x{height} = {width * height:,} pixels", limit)


def refusal(size: str, limit: int) -> str:
    """Why an image of size (in words) is refused, and how to allow it."""
    return (
        f"{size} is above {describe_limit(limit)}, a guard against decompression bombs; set {MAX_PIXELS_ENV} "
        "to a larger number (0 = no limit) before starting ComfyUI to load it"
    )


def pillow_limit() -> int | None:
    """Pillow's own limit as it is outside any decode that lifted it (for a worker process)."""
    with _lock:
        return _saved if _lifted else Image.MAX_IMAGE_PIXELS


@contextlib.contextmanager
def pillow_limit_lifted(limit: int | None) -> Iterator[None]:
    """Raise Pillow's own guard to limit (None: off) while the caller decodes an image that it
    has checked against limit itself; Pillow's value comes back when the last such decode ends."""
    global _lifted, _saved, _set
    with _lock:
        if _lifted == 0:
            _saved = Image.MAX_IMAGE_PIXELS
            _set = None if limit is None or _saved is None else max(limit, _saved)
            Image.MAX_IMAGE_PIXELS = _set
        _lifted += 1
    try:
        yield
    finally:
        with _lock:
            _lifted -= 1
            if _lifted == 0 and Image.MAX_IMAGE_PIXELS == _set:  # unless someone else changed it since
                Image.MAX_IMAGE_PIXELS = _saved
