"""Companion files on real folders: the pattern language, finding exactly one file, reading text."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from batch_image_processing.utils.companions.finding import (
    CompanionError,
    companion_root,
    find_companion,
    looked_for,
)
from batch_image_processing.utils.companions.pattern import NamePattern, PatternError
from batch_image_processing.utils.companions.pixels import companion_tensors, empty_tensors, image_size
from batch_image_processing.utils.companions.text import decode_text, read_text
from PIL import Image


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("bad, words", [
    ("mask.png", "has no {name}"),
    ("", "pattern is empty"),
    ("masks/{name}.png", "folder separator"),
    ("..\\{name}.png", "folder separator"),
])
def test_unusable_patterns_are_refused_with_a_reason(bad: str, words: str) -> None:
    with pytest.raises(PatternError, match=words.replace("{", r"\{").replace("}", r"\}")):
        NamePattern.parse(bad)


def test_name_is_literal_and_only_star_and_question_mark_are_wildcards() -> None:
    pattern = NamePattern.parse("{name}_?.*")
    regex = pattern.for_name("a[1]+b")
    assert regex.fullmatch("a[1]+b_x.png") and not regex.fullmatch("a1+b_x.png")
    assert not regex.fullmatch("a[1]+b_xy.png")
    assert NamePattern.parse("[{name}].txt").for_name("c").fullmatch("[c].txt")
    assert NamePattern.parse(" {name}.txt ").exact_name("日本") == "日本.txt"


def test_finds_the_one_companion_mirroring_subfolders(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    touch(masks / "a_mask.png")
    touch(masks / "2024" / "海 beach#1 (copy)_mask.png")
    touch(masks / "2024" / "other_mask.png")
    touch(masks / ".a_mask.png.1234.partial")
    pattern = NamePattern.parse("{name}_mask.png")
    assert find_companion(str(masks), "", "a", pattern) == str(masks / "a_mask.png")
    found = find_companion(str(masks), "2024", "海 beach#1 (copy)", pattern)
    assert found == str(masks / "2024" / "海 beach#1 (copy)_mask.png")
    assert find_companion(str(masks), "2024", "a", pattern) is None  # not taken from another folder
    assert find_companion(str(masks), "missing/sub", "a", pattern) is None
    assert looked_for(str(masks), "2024/x", "b", pattern) == str(masks / "2024" / "x" / "b_mask.png")


def test_several_matches_are_an_error_listing_them(tmp_path: Path) -> None:
    touch(tmp_path / "a.png")
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "ab.png")
    with pytest.raises(CompanionError) as info:
        find_companion(str(tmp_path), "", "a", NamePattern.parse("{name}.*"))
    assert "'a.jpg', 'a.png'" in str(info.value) and "ab.png" not in str(info.value)
    assert find_companion(str(tmp_path), "", "a", NamePattern.parse("{name}.png")) == str(tmp_path / "a.png")


def test_letter_case_exact_first_then_ignored(tmp_path: Path) -> None:
    pattern = NamePattern.parse("{name}.txt")
    touch(tmp_path / "Photo.TXT")
    assert find_companion(str(tmp_path), "", "photo", pattern) == str(tmp_path / "Photo.TXT")
    touch(tmp_path / "photo.txt")
    if len(os.listdir(tmp_path)) == 2:  # a case-sensitive file system holds both
        assert find_companion(str(tmp_path), "", "photo", pattern) == str(tmp_path / "photo.txt")


def test_in_the_images_own_folder_the_image_is_not_its_own_companion(tmp_path: Path) -> None:
    image = touch(tmp_path / "sub" / "cat.png")
    caption = touch(tmp_path / "sub" / "cat.txt")
    assert find_companion(str(tmp_path / "sub"), "", "cat", NamePattern.parse("{name}.*"), str(image)) == str(caption)
    caption.unlink()
    assert find_companion(str(tmp_path / "sub"), "", "cat", NamePattern.parse("{name}.*"), str(image)) is None


def test_a_new_file_is_seen_by_the_next_lookup(tmp_path: Path) -> None:
    pattern = NamePattern.parse("{name}.txt")
    old = 1_000_000_000
    os.utime(tmp_path, ns=(old, old))  # an old folder: its listing is cached
    assert find_companion(str(tmp_path), "", "n", pattern) is None
    touch(tmp_path / "n.txt")  # changes the folder's mtime
    assert find_companion(str(tmp_path), "", "n", pattern) == str(tmp_path / "n.txt")


def test_companion_folder_setting_must_exist(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    assert companion_root("masks", str(tmp_path)) == str(tmp_path / "masks")
    with pytest.raises(CompanionError, match="folder 'nope' does not exist"):
        companion_root("nope", str(tmp_path))
    touch(tmp_path / "file")
    with pytest.raises(CompanionError, match="is a file, not a folder"):
        companion_root(str(tmp_path / "file"), str(tmp_path))
    with pytest.raises(CompanionError, match="leads out"):
        find_companion(str(tmp_path), "../x", "a", NamePattern.parse("{name}.txt"))


@pytest.mark.parametrize("data", [
    "一只猫, 日本語のキャプション\nline 2".encode(),
    codecs.BOM_UTF8 + "一只猫, 日本語のキャプション\r\nline 2".encode(),
    "一只猫, 日本語のキャプション\rline 2".encode(),
    codecs.BOM_UTF16_LE + "一只猫, 日本語のキャプション\r\nline 2".encode("utf-16-le"),
])
def test_text_reads_back_exactly_whatever_the_editor_wrote(tmp_path: Path, data: bytes) -> None:
    path = touch(tmp_path / "字幕.txt", data)
    assert read_text(str(path)) == "一只猫, 日本語のキャプション\nline 2"


def test_text_keeps_trailing_newlines_and_refuses_other_encodings(tmp_path: Path) -> None:
    assert decode_text(b"tags\n\n") == "tags\n\n"
    assert decode_text(b"") == ""
    with pytest.raises(CompanionError, match=r"'x.txt' is not UTF-8 text \(byte 1\)"):
        decode_text("é".encode("latin-1").rjust(2, b"a"), "x.txt")
    with pytest.raises(CompanionError, match="cannot read"):
        read_text(str(tmp_path / "gone.txt"))


def test_mask_from_alpha_or_from_brightness(tmp_path: Path) -> None:
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    image, mask = companion_tensors(str(tmp_path / "g.png"))
    assert image.shape == (1, 1, 3, 3) and torch.equal(mask, torch.tensor([[[0.0, 128 / 255, 1.0]]]))
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[..., 3] = [0, 255]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert torch.equal(companion_tensors(str(tmp_path / "a.png"))[1], torch.tensor([[[1.0, 0.0]]]))
    Image.fromarray(np.full((1, 1, 3), [255, 0, 0], dtype=np.uint8), "RGB").save(tmp_path / "r.png")
    assert abs(float(companion_tensors(str(tmp_path / "r.png"))[1]) - 0.299) < 1e-6


def test_empty_stand_ins_have_the_images_size_after_rotation(tmp_path: Path) -> None:
    img = Image.new("RGB", (6, 4))
    exif = img.getexif()
    exif[0x0112] = 6  # rotated: shown 4 wide, 6 high
    img.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(str(tmp_path / "r.jpg")) == (4, 6)
    image, mask = empty_tensors((4, 6))
    assert image.shape == (1, 6, 4, 3) and mask.shape == (1, 6, 4) and not mask.any()
