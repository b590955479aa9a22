"""One logger for the pack, so every line in ComfyUI's console says where it came from."""

from __future__ import annotations

import logging

PREFIX = "[BatchImageProcessing]"

_logger = logging.getLogger("batch_image_processing")


def info(msg: str, *args: object) -> None:
    _logger.info(f"{PREFIX} {msg}", *args)


def warning(msg: str, *args: object) -> None:
    _logger.warning(f"{PREFIX} {msg}", *args)


def error(msg: str, *args: object) -> None:
    _logger.error(f"{PREFIX} {msg}", *args)


def debug(msg: str, *args: object) -> None:
    _logger.debug(f"{PREFIX} {msg}", *args)


def exception(msg: str, *args: object) -> None:
    """Log with the current exception's traceback (for bugs, not for user errors)."""
    _logger.exception(f"{PREFIX} {msg}", *args)
