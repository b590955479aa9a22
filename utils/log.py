"""One logger for the pack, so every line in ComfyUI's console says where it came from.

File names that are not valid UTF-8 reach Python with "surrogate" characters that ComfyUI's
console stream cannot encode (every such line would print a logging traceback instead): they
are shown as \\xNN escapes, here and in every message the pack raises.
"""

from __future__ import annotations

import logging

PREFIX = "[BatchImageProcessing]"

_logger = logging.getLogger("batch_image_processing")


def printable(text: object) -> str:
    """str(text) that any UTF-8 stream can write: undecodable bytes of a file name become \\xNN."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _escapable(text) else "backslashreplace").decode(
            "utf-8", "backslashreplace")


def _escapable(text: str) -> bool:
    """True when every surrogate in text is an undecodable byte (\\udc80-\\udcff)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def _safe(args: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(a if isinstance(a, (int, float)) else printable(a) for a in args)


def info(msg: str, *args: object) -> None:
    _logger.info(f"{PREFIX} {printable(msg)}", *_safe(args))


def warning(msg: str, *args: object) -> None:
    _logger.warning(f"{PREFIX} {printable(msg)}", *_safe(args))


def error(msg: str, *args: object) -> None:
    _logger.error(f"{PREFIX} {printable(msg)}", *_safe(args))


def debug(msg: str, *args: object) -> None:
    _logger.debug(f"{PREFIX} {printable(msg)}", *_safe(args))


def exception(msg: str, *args: object) -> None:
    """Log with the current exception's traceback (for bugs, not for user errors)."""
    _logger.exception(f"{PREFIX} {printable(msg)}", *_safe(args))
