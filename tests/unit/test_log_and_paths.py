"""Log lines that never break on a file name, and output folders that stay where they should."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
from batch_image_processing.utils import log
from batch_image_processing.utils.paths import FolderError, blocking_file, resolve_output_folder


def test_non_utf8_names_log_without_a_logging_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 #10: ComfyUI's console is a strict UTF-8 stream; a name with undecodable bytes
    printed '--- Logging error --- ... surrogates not allowed' instead of the line."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", line_buffering=True)
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("batch_image_processing")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not the attribute: it also clears logging's level cache
    errors = io.StringIO()
    monkeypatch.setattr("sys.stderr", errors)  # where logging reports its own failures
    try:
        name = os.fsdecode(b"caf\xe9 \xff.png")
        log.warning("node %s: skipping %s: %s", "1", name, ValueError(f"bad {name}"))
        log.info(f"image 1/2 {name}")
        log.info("odd %s", "a\ud800b")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text = raw.getvalue().decode("utf-8")
    assert "Logging error" not in errors.getvalue()
    assert "skipping caf\\xe9 \\xff.png: bad caf\\xe9 \\xff.png" in text
    assert "image 1/2 caf\\xe9 \\xff.png" in text and "odd a\\ud800b" in text


def test_printable_keeps_valid_text_as_it_is() -> None:
    assert log.printable("写真 😀 é") == "写真 😀 é"
    assert log.printable(42) == "42"


def test_relative_output_folder_stays_inside_and_absolute_may_go_anywhere(tmp_path: Path) -> None:
    """Issue 11 #8: '../x' left ComfyUI's output folder."""
    base = tmp_path / "output"
    base.mkdir()
    assert resolve_output_folder("", str(base)) == str(base)
    assert resolve_output_folder("a/../b", str(base)) == str(base / "b")
    for raw in ("..", "../elsewhere", "a/../../x", "'../quoted'"):
        with pytest.raises(FolderError, match=r"output_directory .* leads out of ComfyUI's output folder"):
            resolve_output_folder(raw, str(base))
    assert resolve_output_folder(str(tmp_path / "anywhere"), str(base)) == str(tmp_path / "anywhere")


def test_nul_and_existing_file_are_refused_with_what_to_do(tmp_path: Path) -> None:
    """Issue 11 #10: 'embedded null byte' and 'File exists' named no input."""
    with pytest.raises(FolderError, match=r"output_directory contains a NUL character .* remove it"):
        resolve_output_folder("out\x00put", str(tmp_path))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FolderError, match=r"output_directory '.*a_file' is a file, not a folder: choose a folder"):
        resolve_output_folder("a_file", str(tmp_path))
    assert blocking_file(str(tmp_path / "a_file" / "sub" / "deeper")) == str(tmp_path / "a_file")
    assert blocking_file(str(tmp_path / "free" / "sub")) is None
