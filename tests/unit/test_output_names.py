"""The collision rule: one output name per input of a batch, stable from run to run."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from batch_image_processing.utils.saving.naming import build_name, clean_relative_path, name_bytes, split_filename
from batch_image_processing.utils.saving.output_names import _stem_and_extension, unique_stems

# The ten inputs of issue 11 that gave five results: names that meet after cleaning, by extension or case.
COLLIDING = ["photo.jpg", "photo.png", "x.png", "x.PNG", "trail .png", "trail.png", "a?b.png", "a_b.png",
             "q:r.png", "r.png"]


def saved_names(rel_paths: list[str], **build: object) -> list[str]:
    """What the saver writes for each input: folder/name, folded as a case-insensitive file system does."""
    stems = unique_stems(rel_paths)
    names = []
    for rel in rel_paths:
        folder = clean_relative_path(rel.rpartition("/")[0])
        name = build_name(stems[rel], str(build.get("prefix", "")), str(build.get("suffix", "")),
                          build.get("index"), ".png")  # type: ignore[arg-type]
        names.append(f"{folder}/{name}".casefold())
    return names


def test_the_ten_colliding_inputs_get_ten_names_on_a_real_folder(tmp_path: Path) -> None:
    for name in COLLIDING:
        (tmp_path / name).write_bytes(b"x")  # all ten are legal, distinct Linux file names
    rel_paths = sorted(p.name for p in tmp_path.iterdir())
    assert len(rel_paths) == 10
    stems = unique_stems(rel_paths)
    assert len({s.casefold() for s in stems.values()}) == 10
    assert stems["photo.jpg"] == "photo_jpg" and stems["photo.png"] == "photo_png"
    assert stems["q:r.png"] == "q_r" and stems["r.png"] == "r"  # "q:" is no drive letter on Linux
    for rel in ("x.png", "x.PNG", "trail .png", "trail.png", "a?b.png", "a_b.png"):
        base = split_filename(rel)[0]
        assert stems[rel].startswith(base + "_") and len(stems[rel]) == len(base) + 9, stems[rel]
    for suffix, index in (("", None), ("_x2", 0), ("_x2", 2)):
        assert len(set(saved_names(rel_paths, suffix=suffix, index=index))) == 10


def test_same_names_whatever_the_order_and_from_run_to_run() -> None:
    first = unique_stems(COLLIDING)
    shuffled = COLLIDING[:]
    random.Random(3).shuffle(shuffled)
    assert unique_stems(shuffled) == first
    assert unique_stems(list(reversed(COLLIDING))) == first


def test_names_that_meet_no_other_keep_their_stem() -> None:
    rels = ["beach_001.jpg", "2024/beach_001.jpg", "2024/summer/wave.webp", "Scan 12 (copy).tif", "CON.png"]
    assert unique_stems(rels) == {"beach_001.jpg": "beach_001", "2024/beach_001.jpg": "beach_001",
                                  "2024/summer/wave.webp": "wave", "Scan 12 (copy).tif": "Scan 12 (copy)",
                                  "CON.png": "_CON"}


def test_folders_that_meet_after_cleaning_or_by_case_share_one_namespace() -> None:
    rels = ["A/x.png", "a/x.jpg", "b?c/y.png", "b_c/y.png", "d/z.png", "e/z.png"]
    stems = unique_stems(rels)
    assert len(set(saved_names(rels))) == 6
    assert stems["d/z.png"] == "z" and stems["e/z.png"] == "z"  # different folders: no clash


def test_a_counter_suffix_meets_the_bare_name() -> None:
    """An IMAGE of several images saves photo_0001: an input called photo_0001 must not take it."""
    rels = ["photo.png", "photo_0001.png", "frame_0001.png", "frame_0002.png"]
    stems = unique_stems(rels)
    assert stems["frame_0001.png"] == "frame_0001" and stems["frame_0002.png"] == "frame_0002"
    assert stems["photo.png"] == "photo_png" and stems["photo_0001.png"] == "photo_0001_png"
    multi = {build_name(stems["photo.png"], "", "", i, ".png") for i in range(3)}
    assert build_name(stems["photo_0001.png"], "", "", None, ".png") not in multi


def test_an_extension_name_that_is_taken_falls_back_to_the_checksum() -> None:
    rels = ["photo.jpg", "photo.png", "photo_png.webp", "noext", "noext.png"]
    stems = unique_stems(rels)
    assert stems["photo_png.webp"] == "photo_png" and stems["photo.jpg"] == "photo_jpg"
    assert stems["photo.png"].startswith("photo_") and stems["photo.png"] != "photo_png"
    assert len({s.casefold() for s in stems.values()}) == len(rels)


def test_non_utf8_and_cjk_names(tmp_path: Path) -> None:
    raw = [b"caf\xe9.png", b"caf\xe8.png", "写真.png".encode(), "写真.jpg".encode()]
    for name in raw:
        (tmp_path / name.decode("utf-8", "surrogateescape")).write_bytes(b"x")
    rels = sorted(p.name for p in tmp_path.iterdir())
    stems = unique_stems(rels)
    assert len(set(stems.values())) == 4
    assert stems["写真.png"] == "写真_png"


@pytest.mark.parametrize("name", ["IMG_0001.JPG", "a-b_c.png", "写真_1.webp", "CON.png", "nul.tif", "x.y.png",
                                  "trail .png", " lead.png", "a?b.png", "q:r.png", "noext", ".hidden",
                                  "caf\udce9.png", "long" * 70 + ".png", "x.toolongext"])
def test_fast_split_matches_the_full_rules(name: str) -> None:
    assert _stem_and_extension(name) == split_filename(name)


def test_cost_at_100000_files() -> None:
    rels = [f"d{i % 50}/IMG_{i:05d}.JPG" for i in range(100_000)] + [f"d{i % 50}/IMG_{i:05d}.png"
                                                                      for i in range(0, 100_000, 100)]
    start = time.process_time()
    stems = unique_stems(rels)
    spent = time.process_time() - start
    assert len(stems) == len(rels)
    assert stems["d0/IMG_00000.JPG"] == "IMG_00000_jpg" and stems["d1/IMG_00001.JPG"] == "IMG_00001"
    assert spent < 3.0, f"{spent:.2f} s of CPU for 100,000 names (measured about 0.25 s)"


def test_long_stems_that_meet_only_after_cutting_still_get_two_names() -> None:
    a, b = "k" * 250 + "1.png", "k" * 250 + "2.png"
    names = saved_names([a, b], suffix="_upscaled_with_a_long_suffix")
    assert len(set(names)) == 2 and all(name_bytes(n.rpartition("/")[2]) <= 255 for n in names)
