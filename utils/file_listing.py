"""Find the images of a folder and put them in the order a person reads them.

Pure file-system logic (no ComfyUI): filters, natural sort, hidden-file rules, and the
cheap "is there at least one match" check that validation uses on every queued prompt.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

FILTER_PRESETS: dict[str, tuple[str, ...]] = {
    "All Images": ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "avif", "heic", "heif", "jxl"),
    "PNG Only": ("png",),
    "JPG Only": ("jpg", "jpeg"),
    "WebP Only": ("webp",),
    "Custom": (),
}
SORT_MODES = ("Name (natural)", "Modified time")
DEFAULT_CUSTOM_PATTERN = "*.png, *.jpg, *.jpeg, *.webp"

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ImageEntry:
    """One file of a batch: its path relative to the batch folder uses "/" separators."""

    rel_path: str
    mtime: float

    @property
    def filename(self) -> str:
        return self.rel_path.rsplit("/", 1)[-1]

    @property
    def rel_dir(self) -> str:
        return self.rel_path.rsplit("/", 1)[0] if "/" in self.rel_path else ""


class FileMatcher:
    """Decides whether a file name (or relative path) belongs to the batch."""

    def __init__(self, filter_preset: str, custom_pattern: str = "") -> None:
        if filter_preset not in FILTER_PRESETS:
            raise ValueError(
                f"Unknown filter_preset {filter_preset!r}; choose one of {', '.join(FILTER_PRESETS)}."
            )
        self._extensions = frozenset("." + ext for ext in FILTER_PRESETS[filter_preset])
        self._patterns: tuple[str, ...] = ()
        if filter_preset == "Custom":
            self._patterns = parse_patterns(custom_pattern)
            if not self._patterns:
                raise ValueError(
                    "filter_preset is 'Custom' but custom_pattern is empty: "
                    "give comma-separated globs such as '*.png, scan_*.tif'."
                )

    def matches(self, rel_path: str) -> bool:
        name = rel_path.rsplit("/", 1)[-1]
        if not self._patterns:
            return os.path.splitext(name)[1].lower() in self._extensions
        lowered_name, lowered_path = name.lower(), rel_path.lower()
        for pattern in self._patterns:
            target = lowered_path if "/" in pattern else lowered_name
            if fnmatch.fnmatchcase(target, pattern):
                return True
        return False


def parse_patterns(custom_pattern: str) -> tuple[str, ...]:
    """Split a comma-separated glob list; case-insensitive, so patterns are lower-cased."""
    return tuple(p.strip().lower().replace("\\", "/") for p in (custom_pattern or "").split(",") if p.strip())


def natural_key(text: str) -> tuple:
    """Sort key that puts img2 before img10 and ignores case (ties broken by the exact text)."""
    parts = _DIGITS.split(text.casefold())
    key = tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts if p != "")
    return (key, text)


def path_key(rel_path: str) -> tuple:
    """Natural order by relative path: folder by folder, so a folder's files stay together."""
    return tuple(natural_key(part) for part in rel_path.split("/"))


def _walk(root: str, recursive: bool) -> Iterator[tuple[str, os.DirEntry]]:
    """Yield (relative path, entry) for non-hidden files; follows links without looping."""
    seen: set[tuple[int, int]] = set()
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            st = os.stat(abs_dir)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            it = os.scandir(abs_dir)
        except OSError:
            if not rel_dir:
                raise  # the batch folder itself: the caller reports it
            continue  # an unreadable subfolder is skipped
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    if entry.is_file():
                        yield rel, entry
                    elif recursive and entry.is_dir():
                        stack.append((rel, entry.path))
                except OSError:
                    continue


def list_images(root: str, matcher: FileMatcher, recursive: bool, sort_by: str) -> list[ImageEntry]:
    """All matching images under root, sorted; raises OSError when root cannot be read."""
    if sort_by not in SORT_MODES:
        raise ValueError(f"Unknown sort_by {sort_by!r}; choose one of {', '.join(SORT_MODES)}.")
    entries = []
    for rel, entry in _walk(root, recursive):
        if matcher.matches(rel):
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            entries.append(ImageEntry(rel, mtime))
    if sort_by == "Modified time":
        entries.sort(key=lambda e: (e.mtime, path_key(e.rel_path)))
    else:
        entries.sort(key=lambda e: path_key(e.rel_path))
    return entries


def has_any_image(root: str, matcher: FileMatcher, recursive: bool) -> bool:
    """True as soon as one matching file is found: cheap enough to run on every validation."""
    return any(matcher.matches(rel) for rel, _ in _walk(root, recursive))
