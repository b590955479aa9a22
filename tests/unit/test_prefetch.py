from __future__ import annotations

import os
import threading
from pathlib import Path

import imagefiles as img
import pytest
import torch
from batch_image_processing.utils.image_decode import DecodeError
from batch_image_processing.utils.prefetch import Prefetcher, prepare


def counting_prepare(calls: list[str], gate: threading.Event | None = None):
    def run(path: str, device=None, dtype=None):
        if gate is not None:
            gate.wait(5)
        calls.append(os.path.basename(path))
        return prepare(path, device, dtype)
    return run


def test_prefetched_image_is_used_once_and_matches_a_direct_decode(tmp_path: Path) -> None:
    img.write_png(tmp_path / "b.png", 8, 8, seed=5)
    calls: list[str] = []
    pre = Prefetcher(counting_prepare(calls))
    pre.schedule("k", 1, str(tmp_path / "b.png"), "cpu", torch.float32)
    got = pre.take("k", 1, str(tmp_path / "b.png"))
    assert got is not None and calls == ["b.png"]
    assert got._tensors is not None, "CPU tensors are built in the background too"
    assert torch.equal(got.tensors()[0], prepare(str(tmp_path / "b.png")).tensors()[0])
    assert pre.take("k", 1, str(tmp_path / "b.png")) is None, "an image is handed out once"


def test_wrong_index_or_changed_file_is_never_served(tmp_path: Path) -> None:
    img.write_png(tmp_path / "c.png", 8, 8, seed=1)
    pre = Prefetcher()
    pre.schedule("k", 2, str(tmp_path / "c.png"))
    assert pre.take("k", 3, str(tmp_path / "c.png")) is None
    pre.schedule("k", 2, str(tmp_path / "c.png"))
    img.write_png(tmp_path / "c.png", 9, 8, seed=2)  # replaced while the workflow ran
    st = os.stat(tmp_path / "c.png")
    os.utime(tmp_path / "c.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert pre.take("k", 2, str(tmp_path / "c.png")) is None


def test_discard_and_reschedule_keep_one_image_per_batch(tmp_path: Path) -> None:
    for name in ("x.png", "y.png"):
        img.write_png(tmp_path / name, 4, 4)
    gate = threading.Event()
    calls: list[str] = []
    pre = Prefetcher(counting_prepare(calls, gate))
    pre.schedule("a", 0, str(tmp_path / "x.png"))
    pre.schedule("a", 1, str(tmp_path / "y.png"))  # replaces, does not add
    pre.schedule("b", 0, str(tmp_path / "x.png"))
    assert sorted(pre.pending_keys()) == ["a", "b"]
    pre.discard("b")
    assert pre.pending_keys() == ["a"]
    gate.set()
    assert pre.take("a", 1, str(tmp_path / "y.png")) is not None


def test_decode_errors_surface_at_take(tmp_path: Path) -> None:
    img.write_zero_byte(tmp_path / "z.png")
    pre = Prefetcher()
    pre.schedule("k", 0, str(tmp_path / "z.png"))
    with pytest.raises(DecodeError, match="empty"):
        pre.take("k", 0, str(tmp_path / "z.png"))
