"""Read a caption or any text companion as the text a person wrote: UTF-8 (with or without a
byte order mark, as Windows Notepad writes it), UTF-16 with its mark, and line ends made "\\n"
whether the file has CRLF (Windows) or a lone CR (old Mac)."""

from __future__ import annotations

import codecs

from ..log import printable
from .finding import CompanionError

TEXT_EXTENSIONS = frozenset({".txt", ".caption", ".tags", ".md", ".json", ".csv", ".tsv", ".yaml", ".yml", ".xml",
                             ".text", ".prompt"})
MAX_TEXT_BYTES = 16 * 1024 * 1024  # a caption of 16 MB is a mistake, not a caption


def decode_text(data: bytes, path: str = "") -> str:
    """The text of a file's bytes; CompanionError naming path when it is not UTF-8 or UTF-16 text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # removes a UTF-8 byte order mark, if any
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CompanionError(f"'{printable(path)}' is not UTF-8 text (byte {exc.start}): save it as UTF-8.") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: str) -> str:
    """The text of the file at path (see decode_text)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise CompanionError(f"cannot read '{printable(path)}': {exc.strerror or exc}.") from None
    if len(data) > MAX_TEXT_BYTES:
        raise CompanionError(f"'{printable(path)}' is larger than {MAX_TEXT_BYTES // 1024 // 1024} MB: not a caption.")
    return decode_text(data, path)
