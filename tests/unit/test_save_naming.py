from __future__ import annotations

import os
from pathlib import Path

import pytest
from batch_image_processing.utils.save_naming import (
    NumberAllocator,
    UnsafePathError,
    build_name,
    clean_component,
    clean_relative_path,
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
