"""One output name per input of a batch, even where input names meet.

The saver cleans names (`a?b` becomes `a_b`), drops extensions (`photo.jpg` and `photo.png` are
both `photo`) and file systems may ignore letter case (`x.png`, `x.PNG`): each of these would
make two inputs share one result. The loader knows the whole batch, so the rule is applied to
all of its file names at once:

- an input whose cleaned stem no other input of the same output folder shares (ignoring case)
  keeps it;
- inputs that share one get their extension appended (`photo_jpg`, `photo_png`), and where that
  is still not unique, `_` and 8 hex digits of a checksum of their relative path instead;
- `name_0001` (what an IMAGE of several images adds) counts as meeting `name`.

Pure and deterministic: the same list of paths always gives the same names, whatever its order.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

from .naming import DEFAULT_STEM, NAME_BYTES, clean_relative_path, split_filename

_COUNTER = re.compile(r"^(.*)_\d{4,}$")  # build_name's "_0001" for the images of one IMAGE
# Names that cleaning leaves as they are (most of them): split without the full cleaning.
_PLAIN = re.compile(r"([\w-]+)(\.[A-Za-z0-9]{1,8})")


def _stem_and_extension(filename: str) -> tuple[str, str]:
    """split_filename(filename), about four times faster for plain names."""
    plain = _PLAIN.fullmatch(filename)
    if plain is None or len(plain.group(1)) <= 4 or len(plain.group(1)) * 4 > NAME_BYTES:
        return split_filename(filename)  # short stems may be CON, NUL, ...; long ones may need a cut
    return plain.group(1), plain.group(2).lower()


def _counter_base(folded: str) -> str | None:
    """"x" for "x_0001", else None."""
    if not folded[-1:].isdigit():
        return None
    match = _COUNTER.match(folded)
    return match.group(1) if match else None


def _checksum(rel_path: str, digits: int) -> str:
    return hashlib.sha1(rel_path.encode("utf-8", "surrogateescape")).hexdigest()[:digits]


class _Taken:
    """Folded names of one output folder; a name also meets another that differs by '_0001'."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.bases: set[str] = set()  # "x" for every taken "x_0001"

    def meets(self, folded: str) -> bool:
        if folded in self.names or folded in self.bases:
            return True
        return _counter_base(folded) in self.names

    def add(self, folded: str) -> None:
        self.names.add(folded)
        base = _counter_base(folded)
        if base is not None:
            self.bases.add(base)


def _name_folder(members: list[tuple[str, str, str]], result: dict[str, str]) -> None:
    """members: (rel_path, stem, extension) of one output folder; writes rel_path -> stem."""
    by_stem: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for member in members:
        by_stem[member[1].casefold()].append(member)
    clashing = {folded for folded, group in by_stem.items() if len(group) > 1}
    for folded in by_stem:
        base = _counter_base(folded)
        if base is not None and base in by_stem:
            clashing.update((folded, base))
    for folded, group in by_stem.items():
        if folded not in clashing:
            result[group[0][0]] = group[0][1]
    if not clashing:
        return
    taken = _Taken()
    for folded in by_stem.keys() - clashing:
        taken.add(folded)
    renamed = sorted(m for folded in clashing for m in by_stem[folded])
    with_extension = [f"{stem}_{ext[1:]}" if ext else "" for _, stem, ext in renamed]
    counts: dict[str, int] = defaultdict(int)
    for candidate in with_extension:
        counts[candidate.casefold()] += 1
    for (rel_path, stem, _), candidate in zip(renamed, with_extension, strict=True):
        folded = candidate.casefold()
        if not candidate or counts[folded] > 1 or taken.meets(folded):
            digits = 8
            candidate = f"{stem}_{_checksum(rel_path, digits)}"
            while taken.meets(candidate.casefold()):  # never in practice: 32-bit checksums meeting
                digits += 4
                candidate = f"{stem}_{_checksum(rel_path, digits)}"
        taken.add(candidate.casefold())
        result[rel_path] = candidate


def unique_stems(rel_paths: list[str]) -> dict[str, str]:
    """Relative path ('/' separators) -> the stem to save it under, unique within each output folder."""
    folders: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    cleaned_dirs: dict[str, str] = {}
    for rel_path in rel_paths:
        rel_dir, _, filename = rel_path.rpartition("/")
        folder = cleaned_dirs.get(rel_dir)
        if folder is None:
            folder = cleaned_dirs[rel_dir] = clean_relative_path(rel_dir).casefold()
        stem, extension = _stem_and_extension(filename)
        folders[folder].append((rel_path, stem or DEFAULT_STEM, extension))
    result: dict[str, str] = {}
    for members in folders.values():
        _name_folder(members, result)
    return result
