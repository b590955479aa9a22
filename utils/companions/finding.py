"""Find the companion of one image: the file in the companion folder (mirroring the image's
subfolder) whose name the pattern gives for the image's base name.

Exactly one file may match: several are an error that lists them, never a silent pick. A name
in the exact letter case wins over names that differ only in case (Windows and macOS folders
ignore case, Linux folders do not). Hidden files (and the savers' temporary .partial files) and
the image itself never count.
"""

from __future__ import annotations

import os
import threading
import time

from ..log import printable
from ..paths import clean_user_path, resolve_folder
from .pattern import NamePattern

RACY_WINDOW_NS = 2_000_000_000  # a folder changed this recently may change again in the same mtime tick
_CACHE_SIZE = 256


class CompanionError(ValueError):
    """A companion cannot be found for a reason the user must fix; the message names the setting or files."""


def companion_root(folder: str, base: str, setting: str = "folder") -> str:
    """The absolute companion folder of the setting (relative: inside base, ComfyUI's input folder)."""
    path = resolve_folder(folder, base)
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        shown = printable(clean_user_path(folder))
        raise CompanionError(f"{setting} '{shown}' {what} (looked at '{printable(path)}'). Set {setting} to "
                             "the folder of companion files, or leave it empty for the image's own folder.")
    return path


class _Listings:
    """File names per folder, kept while the folder's mtime says nothing was added or removed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, tuple[int, list[str]]] = {}

    def names(self, folder: str) -> list[str]:
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return []  # a mirrored subfolder that does not exist holds no companion
        with self._lock:
            cached = self._names.get(folder)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
        if mtime < time.time_ns() - RACY_WINDOW_NS:
            with self._lock:
                if len(self._names) >= _CACHE_SIZE:
                    self._names.clear()
                self._names[folder] = (mtime, names)
        return names


_listings = _Listings()


def _own_name(folder: str, image_path: str | None) -> str | None:
    """The image's file name when it lies in folder (then it is not its own companion)."""
    if image_path is None:
        return None
    image_folder, name = os.path.split(os.path.realpath(image_path))
    same = os.path.normcase(image_folder) == os.path.normcase(os.path.realpath(folder))
    return name if same else None


def companion_folder(root: str, rel_dir: str) -> str:
    """root with the image's subfolder (RELATIVE_PATH, '/' separators) mirrored under it."""
    parts = [p for p in (rel_dir or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CompanionError(f"relative_path '{printable(rel_dir)}' leads out of the companion folder: link the "
                             "loader's RELATIVE_PATH.")
    return os.path.join(root, *parts)


def find_companion(root: str, rel_dir: str, base_name: str, pattern: NamePattern,
                   image_path: str | None = None) -> str | None:
    """Path of base_name's companion under root/rel_dir; None when there is none. image_path
    (the image itself) never counts as its own companion."""
    folder = companion_folder(root, rel_dir)
    own = _own_name(folder, image_path)
    loose = pattern.for_name(base_name, ignore_case=True)
    found = [n for n in _listings.names(folder) if loose.fullmatch(n) and n != own]
    strict = pattern.for_name(base_name)
    found = [n for n in found if strict.fullmatch(n)] or found
    if len(found) > 1:
        listed = ", ".join(f"'{printable(n)}'" for n in sorted(found))
        raise CompanionError(
            f"{len(found)} files in '{printable(folder)}' match pattern '{pattern.text}' for "
            f"'{printable(base_name)}': {listed}. Make the pattern tell them apart (e.g. '{{name}}_mask.png' "
            "instead of '{name}.*') or move the extra files away.")
    return os.path.join(folder, found[0]) if found else None


def looked_for(root: str, rel_dir: str, base_name: str, pattern: NamePattern) -> str:
    """What find_companion looked for, for messages: the folder and the pattern filled in."""
    return os.path.join(companion_folder(root, rel_dir), pattern.exact_name(base_name))
