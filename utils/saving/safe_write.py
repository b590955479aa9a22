"""Write a file so that a crash never leaves half an image under a real name, and an existing
file is replaced only when the user asked for it. Results get the permissions any new file of
the process gets (0666 minus the umask, as ComfyUI's own Save Image), not a temp file's 0600."""

from __future__ import annotations

import errno
import itertools
import os
import secrets
from collections.abc import Callable, Iterable
from typing import BinaryIO

ADD_NUMBER, SKIP_EXISTING, OVERWRITE = "Add number", "Skip existing", "Overwrite"
OVERWRITE_MODES = (ADD_NUMBER, SKIP_EXISTING, OVERWRITE)


class WriteFencedError(Exception):
    """The fence said no right before the rename: nothing was written (the caller logged why)."""


def _claim(tmp: str, candidate: str) -> bool:
    """Give the finished temporary file the name candidate unless that name exists (atomic)."""
    try:
        os.link(tmp, candidate)  # fails if candidate exists: no check-then-write race
        return True
    except FileExistsError:
        return False
    except OSError:  # file systems without hard links
        if os.path.lexists(candidate):
            return False
        os.replace(tmp, candidate)
        return True


def _create_temporary(target: str) -> tuple[int, str]:
    """A new, exclusive temporary file beside target, created with mode 0666 so the umask applies."""
    folder, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name[:50]}.{secrets.token_hex(4)}.partial")  # <= 218 bytes
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside '{target}'")


def write_atomically(
    target: str,
    write: Callable[[BinaryIO], None],
    mode: str,
    alternatives: Iterable[str] = (),
    fence: Callable[[], bool] | None = None,
) -> tuple[str, bool]:
    """Write via a temporary file in the target's folder; returns (path, written).

    mode Overwrite replaces target; Skip existing leaves an existing target untouched and
    returns it; Add number takes target, or the first free name of alternatives. fence, when
    given, is asked right before the rename (after the slow encode): False raises
    WriteFencedError and leaves no file behind.
    """
    if mode not in OVERWRITE_MODES:
        raise ValueError(f"overwrite_mode {mode!r} is not one of: {', '.join(OVERWRITE_MODES)}")
    if mode != ADD_NUMBER and os.path.isdir(target):  # never "keep" or replace a folder as if it were a result
        raise IsADirectoryError(errno.EISDIR, "a folder has the result's name", target)
    if mode == SKIP_EXISTING and os.path.lexists(target):
        return target, False
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        if fence is not None and not fence():
            raise WriteFencedError(target)
        if mode == OVERWRITE:
            os.replace(tmp, target)
            return target, True
        candidates = [target] if mode == SKIP_EXISTING else itertools.chain([target], alternatives)
        for candidate in candidates:
            if _claim(tmp, candidate):
                return candidate, True
        return target, False  # Skip existing, and the file appeared while we encoded
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
