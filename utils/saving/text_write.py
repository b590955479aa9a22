"""Write a text result (a caption, tags, a description) as UTF-8, atomically, with the image
saver's overwrite modes plus Append, which adds the text to an existing file on a new line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO

from .safe_write import ADD_NUMBER, OVERWRITE, OVERWRITE_MODES, SKIP_EXISTING, write_atomically

APPEND = "Append"
TEXT_MODES = (ADD_NUMBER, SKIP_EXISTING, OVERWRITE, APPEND)
DEFAULT_EXTENSION = "txt"


class TextExtensionError(ValueError):
    """The extension setting is not a usable extension."""


def clean_extension(extension: str) -> str:
    """'.txt' from 'txt', '.txt' or ' TXT ' (letter case kept); TextExtensionError otherwise."""
    text = (extension or "").strip().lstrip(".")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", text):
        raise TextExtensionError(f"extension '{extension}' is not a file extension: give letters and digits, "
                                 f"e.g. '{DEFAULT_EXTENSION}', 'caption' or 'json'.")
    return "." + text


def _existing(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def appended(existing: bytes, text: str) -> bytes:
    """existing followed by text, on a new line when existing does not end with one."""
    data = text.encode("utf-8")
    if existing and not existing.endswith(b"\n"):
        return existing + b"\n" + data
    return existing + data


def write_text(target: str, text: str, mode: str, alternatives: Iterable[str] = ()) -> tuple[str, bool]:
    """Write text (UTF-8, no byte order mark) to target by mode; returns (path, written) as
    write_atomically does. Append rewrites the whole file atomically with the text added."""
    if mode == APPEND:
        existing = _existing(target)
        data = appended(existing, text)
        mode = OVERWRITE
    elif mode in OVERWRITE_MODES:
        data = text.encode("utf-8")
    else:
        raise ValueError(f"overwrite_mode {mode!r} is not one of: {', '.join(TEXT_MODES)}")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return write_atomically(target, write, mode, alternatives)
