"""Text results on disk: UTF-8 without a byte order mark, the overwrite modes, Append."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_image_processing.utils.saving.text_write import (
    TextExtensionError,
    appended,
    clean_extension,
    write_text,
)


def numbered(path: Path):
    return (str(path.with_name(f"{path.stem}_{i}{path.suffix}")) for i in range(1, 100))


def test_utf8_without_bom_and_line_ends_as_given(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "猫.txt"
    assert write_text(str(target), "一只猫\nline", "Add number", numbered(target)) == (str(target), True)
    assert target.read_bytes() == "一只猫\nline".encode()


def test_modes(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    assert write_text(str(target), "new", "Skip existing") == (str(target), False)
    assert target.read_bytes() == b"old"
    assert write_text(str(target), "new", "Add number", numbered(target)) == (str(tmp_path / "a_1.txt"), True)
    assert write_text(str(target), "new", "Append") == (str(target), True)
    assert target.read_bytes() == b"old\nnew"
    assert write_text(str(target), "more\n", "Append") == (str(target), True)
    assert target.read_bytes() == b"old\nnew\nmore\n"
    assert write_text(str(target), "x", "Append")[1] and target.read_bytes() == b"old\nnew\nmore\nx"
    assert write_text(str(target), "fresh", "Overwrite") == (str(target), True)
    assert target.read_bytes() == b"fresh"
    assert write_text(str(tmp_path / "new.txt"), "first", "Append") == (str(tmp_path / "new.txt"), True)
    assert (tmp_path / "new.txt").read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "a_1.txt", "new.txt"]  # no temporary left
    with pytest.raises(ValueError, match="overwrite_mode"):
        write_text(str(target), "x", "Sometimes")


def test_append_joins_on_a_new_line_only_when_needed() -> None:
    assert appended(b"", "a") == b"a"
    assert appended(b"a\n", "b") == b"a\nb"
    assert appended(b"a", "b") == b"a\nb"


@pytest.mark.parametrize("raw, ext", [("txt", ".txt"), (".caption", ".caption"), (" TXT ", ".TXT")])
def test_extensions(raw: str, ext: str) -> None:
    assert clean_extension(raw) == ext


@pytest.mark.parametrize("raw", ["", ".", "t/x", "a b", "../x", "x" * 17])
def test_bad_extensions_are_refused(raw: str) -> None:
    with pytest.raises(TextExtensionError, match="is not a file extension"):
        clean_extension(raw)
