from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from batch_image_processing.utils.saving.naming import (
    NamingError,
    NumberAllocator,
    UnsafePathError,
    build_name,
    clean_component,
    clean_relative_path,
    cut_to_bytes,
    name_bytes,
    numbered_candidate,
    output_format,
    split_filename,
    target_path,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("beach_001.jpg", ("beach_001", ".jpg")),
        ("photo.JPEG", ("photo", ".jpeg")),
        ("../../etc/passwd", ("passwd", "")),
        ("/abs/path/x.png", ("x", ".png")),
        ("C:\\Users\\me\\pic.webp", ("pic", ".webp")),
        ("C:evil.png", ("C_evil", ".png")),  # a legal Linux name, not a drive: ':' becomes '_'
        ("q:r.png", ("q_r", ".png")),
        ("C:/x/pic.png", ("pic", ".png")),
        ("a\x00b.png", ("ab", ".png")),
        ('we<ir>d:na|me?*".png', ("we_ir_d_na_me___", ".png")),
        ("..", ("", "")),
        ("", ("", "")),
        ("CON.png", ("_CON", ".png")),
        ("trailing. .png", ("trailing", ".png")),
        (".hidden", ("hidden", "")),
    ],
)
def test_split_filename_is_safe(raw: str, expected: tuple[str, str]) -> None:
    assert split_filename(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024/summer", "2024/summer"),
        ("2024\\summer", "2024/summer"),
        ("../../outside", "outside"),
        ("/etc", "etc"),
        ("C:\\Windows\\System32", "Windows/System32"),
        ("a/./b/../c", "a/b/c"),
        ("bad:name/ok", "bad_name/ok"),
        ("", ""),
        ("nul/x", "_nul/x"),
    ],
)
def test_clean_relative_path_never_climbs(raw: str, expected: str) -> None:
    assert clean_relative_path(raw) == expected


def test_prefix_and_suffix_cannot_carry_separators() -> None:
    assert build_name("img", "../../", "/x", None, ".png") == "_.._img_x.png"
    assert build_name("img", "pre_", "_up", 0, ".png") == "pre_img_up_0001.png"
    assert build_name("img", "", "", 11, ".jpg") == "img_0012.jpg"
    assert clean_component("a\nb") == "a_b"


def test_output_format_and_extension() -> None:
    assert output_format("same as input", ".jpeg") == ("jpg", ".jpeg")
    assert output_format("same as input", ".tif") == ("tiff", ".tif")
    assert output_format("same as input", ".webp") == ("webp", ".webp")
    assert output_format("same as input", ".bmp") == ("png", ".png")
    assert output_format("same as input", ".gif") == ("png", ".png")
    assert output_format("same as input", "") == ("png", ".png")
    assert output_format("jpg", ".png") == ("jpg", ".jpg")
    assert output_format("tiff", ".png") == ("tiff", ".tiff")


def test_target_path_stays_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    assert target_path(str(root), "a/b", "x.png") == str(root / "a" / "b" / "x.png")
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the output folder"):
        target_path(str(root), "link", "x.png")


def test_number_allocator_never_rescans_and_keeps_counting(tmp_path: Path) -> None:
    allocator = NumberAllocator()
    path = str(tmp_path / "a.png")
    gen = allocator.candidates(path)
    assert [next(gen), next(gen)] == [str(tmp_path / "a_1.png"), str(tmp_path / "a_2.png")]
    assert next(allocator.candidates(path)) == str(tmp_path / "a_3.png")
    assert os.listdir(tmp_path) == []


def test_long_stem_with_suffix_and_three_images_gets_three_names(tmp_path: Path) -> None:
    """Issue 11 #3: the name was cut after _0001 was appended, so the three images met."""
    stem = "s" * 198
    names = [build_name(stem, "", "_x2", i, ".png") for i in range(3)]
    assert len(set(names)) == 3
    for i, name in enumerate(names):
        assert name.endswith(f"_x2_{i + 1:04d}.png") and name_bytes(name) <= 255 - 8  # room for Add number
        (tmp_path / name).write_bytes(b"x")  # the file system takes it
        (tmp_path / numbered_candidate(name, 1234567)).write_bytes(b"x")
    assert len(list(tmp_path.iterdir())) == 6


@pytest.mark.parametrize("char", ["字", "😀", "é", "\udce9"])
def test_multibyte_names_are_cut_in_bytes_between_characters(tmp_path: Path, char: str) -> None:
    """Issue 11 #4: 83 CJK characters are 249 bytes; with _upscaled the name was 'too long' for ext4."""
    stem = char * (249 // name_bytes(char))
    name = build_name(stem, "", "_upscaled", None, ".png")
    assert name_bytes(name) <= 247 and name.endswith("_upscaled.png")
    assert re.fullmatch(f"({re.escape(char)})+~[0-9a-f]{{8}}_upscaled\\.png", name), name
    (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == [name]
    other = build_name(stem[:-1] + "z", "", "_upscaled", None, ".png")
    assert other != name, "two long names that start alike still get two names"
    assert build_name(char * 10, "", "_upscaled", None, ".png") == char * 10 + "_upscaled.png"  # short: as is


def test_cut_to_bytes_never_splits_a_character() -> None:
    assert cut_to_bytes("ab字c", 4) == "ab"
    assert cut_to_bytes("ab字c", 5) == "ab字"
    assert cut_to_bytes("abc", 10) == "abc"


def test_prefix_and_suffix_too_long_is_a_clear_error() -> None:
    with pytest.raises(NamingError, match="filename_prefix and filename_suffix are too long"):
        build_name("img", "p" * 120, "s" * 120, None, ".png")
    long_prefix = clean_component("字" * 200)
    assert name_bytes(long_prefix) <= 255


def test_unwritable_surrogates_become_underscores_and_undecodable_bytes_stay() -> None:
    assert split_filename("caf\udce9.png") == ("caf\udce9", ".png")  # the input's own bytes, kept
    assert split_filename("a\ud800b.png") == ("a_b", ".png")  # no file system could write this one
