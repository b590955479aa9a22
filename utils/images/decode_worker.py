"""The decoding side of utils/images/decode_processes.py: runs in a worker process, decodes the
files it is sent and sends back their pixels.

Started by decode_processes with this pack's folder in a package of its own (not the pack's
__init__, which needs ComfyUI), so only the image modules are imported: numpy and Pillow, never
torch (see decode.WITHOUT_TORCH: a file that needs it is answered "failed" and decoded by the
loader itself). Messages are length-prefixed pickles on the
process's stdin and stdout (see read_message); anything else it prints goes to stderr.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import IO, Any

from PIL import Image

from . import decode
from .decode import DecodeError, decode_image
from .pixel_limit import MAX_PIXELS_ENV

READY = "ready"


def write_message(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next message; raises EOFError when the other side has gone."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _decode(path: str, color_profile: str, pillow_limit: int | None, limit_env: str | None) -> tuple:
    """("ok", pixels...), ("unreadable", reason) for a file decode_image refuses, or ("failed",
    what) for anything else (the caller then decodes it itself, and meets the same error)."""
    Image.MAX_IMAGE_PIXELS = pillow_limit
    if limit_env is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
    else:
        os.environ[MAX_PIXELS_ENV] = limit_env
    try:
        d = decode_image(path, color_profile)
    except DecodeError as exc:
        return ("unreadable", exc.reason)
    except Exception as exc:  # reported: the caller decodes the file itself
        return ("failed", f"{type(exc).__name__}: {exc}")
    return ("ok", d.color, d.alpha, d.scale, d.icc_profile, d.exif)


def serve() -> None:
    """Answer requests (id, path, colour profile mode, Pillow's limit, the pack's limit) until
    stdin closes (ComfyUI ended or let the worker go)."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    decode.WITHOUT_TORCH = True
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    if hasattr(os, "nice"):
        try:
            os.nice(10)  # ComfyUI's own threads first, as the decode threads do
        except OSError:
            pass
    write_message(answers, READY)
    while True:
        try:
            request_id, *args = read_message(requests)
        except EOFError:
            return
        write_message(answers, (request_id, _decode(*args)))
