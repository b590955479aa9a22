"""Where a result goes: names built from the input's name, made safe, never outside the folder.

Everything a workflow can feed into a name (file name, relative path, prefix, suffix) is
cleaned here: no `..`, no absolute parts, no drive letters, no separators inside a
component, no NUL or control characters, no names Windows refuses, and no name longer than
255 bytes (the limit of ext4, APFS and NTFS alike).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

FILE_FORMATS = ("same as input", "png", "jpg", "webp", "tiff", "avif")
FORMAT_EXTENSIONS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff", "avif": ".avif"}
# Input extensions that "same as input" keeps; the rest are written as PNG (see output_format).
_SAME_AS_INPUT = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff",
                 ".avif": "avif"}
DEFAULT_STEM = "image"

# Lone surrogates that no file system encoding can write (surrogateescape covers \udc80-\udcff,
# the undecodable bytes of a non-UTF-8 name, which are kept as they are).
_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\ud800-\udc7f\udd00-\udfff]')
_DRIVE = re.compile(r"^[A-Za-z]:(?=[\\/])")  # "C:\x" or "C:/x"; "q:r.png" is a Linux file name
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)
NAME_BYTES = 255  # one path component, in UTF-8 bytes (NTFS counts UTF-16 units: never more)
NUMBER_ROOM = 8  # kept free for Add number's "_1234567"
MIN_STEM_BYTES = 24  # what a cut stem keeps at least (with its checksum)


class NamingError(ValueError):
    """No usable name can be built; the message says which input to change."""


class UnsafePathError(NamingError):
    """A name would leave the output folder; the message says which input."""


def name_bytes(text: str) -> int:
    """Length of text on disk, in bytes (undecodable bytes of a non-UTF-8 name count as one)."""
    return len(text.encode("utf-8", "surrogateescape"))


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest start of text that fits in limit bytes, cut between characters."""
    if name_bytes(text) <= limit:
        return text
    used = 0
    for i, char in enumerate(text):
        used += name_bytes(char)
        if used > limit:
            return text[:i]
    return text


def clean_component(text: str) -> str:
    """One safe path component: illegal characters become '_', Windows' quirks are avoided."""
    text = _ILLEGAL.sub("_", text or "")
    text = text.strip().strip(". ")  # no hidden files, no trailing dots Windows would drop
    if text in ("", ".", ".."):
        return ""
    if _RESERVED.match(text):
        text = "_" + text
    return cut_to_bytes(text, NAME_BYTES)


def _parts(text: str) -> list[str]:
    text = (text or "").replace("\x00", "")
    text = _DRIVE.sub("", text.strip())
    return [p for p in re.split(r"[\\/]+", text) if p not in ("", ".")]


def clean_relative_path(relative_path: str) -> str:
    """Subfolder path with '/' separators; '..', absolute parts and drive letters are dropped."""
    parts = [clean_component(p) for p in _parts(relative_path) if p != ".."]
    return "/".join(p for p in parts if p)


def split_filename(filename: str) -> tuple[str, str]:
    """(stem, extension) of the last component of filename, both cleaned; ('', '') when empty."""
    parts = [p for p in _parts(filename) if p != ".."]
    if not parts:
        return "", ""
    stem, ext = os.path.splitext(parts[-1])
    if not stem and ext:  # ".png" or ".hidden": a name, not an extension
        stem, ext = ext, ""
    return clean_component(stem), ext.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", ext) else ""


def output_format(file_format: str, input_extension: str) -> tuple[str, str]:
    """(format, extension) to write. "same as input" keeps the input's format and extension
    spelling (.jpeg stays .jpeg); BMP, GIF, HEIC, JPEG XL and unknown inputs are written as PNG."""
    if file_format != "same as input":
        return file_format, FORMAT_EXTENSIONS[file_format]
    fmt = _SAME_AS_INPUT.get(input_extension.lower())
    return (fmt, input_extension) if fmt else ("png", FORMAT_EXTENSIONS["png"])


def build_name(stem: str, prefix: str, suffix: str, batch_index: int | None, extension: str) -> str:
    """prefix + stem + suffix (+ _0001 for the i-th image of a batch) + extension, within 255 bytes.

    A name too long is cut in the stem only (between characters), which then ends in "~" and a
    checksum of the whole stem: two long names that start alike still get two names.
    """
    head, end = clean_component(prefix), clean_component(suffix)
    if batch_index is not None:
        end += f"_{batch_index + 1:04d}"
    end += extension
    room = NAME_BYTES - NUMBER_ROOM - name_bytes(head) - name_bytes(end)
    if room < MIN_STEM_BYTES:
        raise NamingError(
            f"filename_prefix and filename_suffix are too long ({name_bytes(head) + name_bytes(end)} bytes "
            f"with the extension): a file name holds at most {NAME_BYTES} bytes; shorten them to leave "
            f"{MIN_STEM_BYTES + NUMBER_ROOM} bytes for the name."
        )
    if name_bytes(stem) > room:
        mark = "~" + hashlib.sha1(stem.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        stem = cut_to_bytes(stem, room - len(mark)) + mark
    name = head + stem + end
    return "_" + name if _RESERVED.match(name) else name


def target_path(root: str, relative_dir: str, name: str) -> str:
    """Absolute path of name in root/relative_dir; refuses anything that resolves outside root."""
    root_real = os.path.realpath(root)
    path = os.path.join(root_real, *relative_dir.split("/"), name) if relative_dir else os.path.join(root_real, name)
    resolved = os.path.realpath(path)
    if os.path.commonpath([resolved, root_real]) != root_real or resolved == root_real:
        raise UnsafePathError(
            f"Refusing to save '{name}' under '{relative_dir}': it resolves to '{resolved}', outside the "
            f"output folder '{root_real}' (check filename, relative_path, filename_prefix, filename_suffix)."
        )
    return path


def numbered_candidate(path: str, number: int) -> str:
    stem, ext = os.path.splitext(path)
    return f"{stem}_{number}{ext}"


class NumberAllocator:
    """Remembers the last number used per target, so Add number never rescans a folder."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def candidates(self, path: str):
        """Yield path_1, path_2, ... starting after the last number handed out for path."""
        with self._lock:
            number = self._last.get(path, 0)
        while True:
            number += 1
            with self._lock:
                self._last[path] = max(self._last.get(path, 0), number)
            yield numbered_candidate(path, number)
