from __future__ import annotations

import os
from pathlib import Path

import pytest
from batch_image_processing.utils.file_listing import (
    FileMatcher,
    has_any_image,
    list_images,
    natural_key,
    parse_patterns,
)


def touch(path: Path, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def names(entries) -> list[str]:
    return [e.rel_path for e in entries]


def test_natural_order_puts_img2_before_img10_ignoring_case() -> None:
    files = ["img10.png", "IMG2.png", "img1.png", "img2b.png", "Img02.png", "a.png", "img100.png"]
    assert sorted(files, key=natural_key) == [
        "a.png", "img1.png", "Img02.png", "IMG2.png", "img2b.png", "img10.png", "img100.png",
    ]


def test_all_images_preset_is_case_insensitive_and_ignores_hidden_and_other_files(tmp_path: Path) -> None:
    for name in ["a.PNG", "b.jpg", "c.JPEG", "d.webp", "e.bmp", "f.TIF", "g.tiff", "h.gif",
                 ".hidden.png", "notes.txt", "raw.cr2", "noext"]:
        touch(tmp_path / name)
    entries = list_images(str(tmp_path), FileMatcher("All Images"), False, "Name (natural)")
    assert names(entries) == ["a.PNG", "b.jpg", "c.JPEG", "d.webp", "e.bmp", "f.TIF", "g.tiff", "h.gif"]


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("PNG Only", ["a.png"]), ("JPG Only", ["b.jpg", "c.jpeg"]), ("WebP Only", ["d.WEBP"])],
)
def test_presets(tmp_path: Path, preset: str, expected: list[str]) -> None:
    for name in ["a.png", "b.jpg", "c.jpeg", "d.WEBP", "e.gif"]:
        touch(tmp_path / name)
    assert names(list_images(str(tmp_path), FileMatcher(preset), False, "Name (natural)")) == expected


def test_custom_patterns_match_names_or_relative_paths(tmp_path: Path) -> None:
    for rel in ["scan_1.TIF", "scan_2.png", "photo.png", "sub/scan_3.tif", "keep/x.jpg"]:
        touch(tmp_path / rel)
    matcher = FileMatcher("Custom", " scan_*.tif , keep/*.jpg")
    assert names(list_images(str(tmp_path), matcher, True, "Name (natural)")) == [
        "keep/x.jpg", "scan_1.TIF", "sub/scan_3.tif",
    ]
    assert parse_patterns("*.PNG,, *.jpg ") == ("*.png", "*.jpg")


def test_custom_without_pattern_and_unknown_preset_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="custom_pattern is empty"):
        FileMatcher("Custom", " , ")
    with pytest.raises(ValueError, match="Unknown filter_preset 'Everything'"):
        FileMatcher("Everything")


def test_subfolders_sorted_by_relative_path_and_hidden_folders_skipped(tmp_path: Path) -> None:
    for rel in ["z.png", "b10/1.png", "b2/2.png", "b2/10.png", "b2/deep/1.png", ".cache/1.png", "A1/x.png"]:
        touch(tmp_path / rel)
    entries = list_images(str(tmp_path), FileMatcher("PNG Only"), True, "Name (natural)")
    assert names(entries) == ["A1/x.png", "b2/2.png", "b2/10.png", "b2/deep/1.png", "b10/1.png", "z.png"]
    assert entries[3].rel_dir == "b2/deep" and entries[3].filename == "1.png"
    flat = list_images(str(tmp_path), FileMatcher("PNG Only"), False, "Name (natural)")
    assert names(flat) == ["z.png"] and flat[0].rel_dir == ""


def test_modified_time_sort_oldest_first_with_name_tiebreak(tmp_path: Path) -> None:
    touch(tmp_path / "new.png", 3_000_000)
    touch(tmp_path / "old.png", 1_000_000)
    touch(tmp_path / "b.png", 2_000_000)
    touch(tmp_path / "a.png", 2_000_000)
    entries = list_images(str(tmp_path), FileMatcher("PNG Only"), False, "Modified time")
    assert names(entries) == ["old.png", "a.png", "b.png", "new.png"]


def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    touch(tmp_path / "sub" / "a.png")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    entries = list_images(str(tmp_path), FileMatcher("PNG Only"), True, "Name (natural)")
    assert names(entries) == ["sub/a.png"]


def test_has_any_image_and_unreadable_root(tmp_path: Path) -> None:
    touch(tmp_path / "a.txt")
    assert not has_any_image(str(tmp_path), FileMatcher("All Images"), True)
    touch(tmp_path / "deep" / "er" / "x.gif")
    assert not has_any_image(str(tmp_path), FileMatcher("All Images"), False)
    assert has_any_image(str(tmp_path), FileMatcher("All Images"), True)
    with pytest.raises(OSError):
        list_images(str(tmp_path / "missing"), FileMatcher("All Images"), False, "Name (natural)")
