from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import imagefiles as img
import pytest
import torch
from batch_image_processing.utils.images import prefetch
from batch_image_processing.utils.images.decode import DecodeError
from batch_image_processing.utils.images.prefetch import Prefetcher, prepare


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files here are seconds old at most: trust their timestamps (the window has its own test)."""
    monkeypatch.setattr(prefetch, "RACY_WINDOW_NS", 0)


def counting_prepare(calls: list[str], gate: threading.Event | None = None):
    def run(path: str, device=None, dtype=None, *color):
        if gate is not None:
            gate.wait(5)
        calls.append(os.path.basename(path))
        return prepare(path, device, dtype, *color)
    return run


def test_prefetched_image_is_handed_over_finished_once(tmp_path: Path) -> None:
    img.write_png(tmp_path / "b.png", 8, 8, seed=5)
    calls: list[str] = []
    pre = Prefetcher(counting_prepare(calls))
    pre.schedule("k", 1, str(tmp_path / "b.png"), "cpu", torch.float16)
    got = pre.take("k", 1, str(tmp_path / "b.png"))
    assert got is not None and calls == ["b.png"]
    built = got._tensors
    assert built is not None and built[0].dtype == torch.float16, "tensors are built in the background"
    assert got.tensors("cpu", torch.float16) is built, "the run only hands them over"
    direct = prepare(str(tmp_path / "b.png"), "cpu", torch.float16).tensors("cpu", torch.float16)[0]
    assert torch.equal(built[0], direct)
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


def write_same_size(path: Path, seed: int) -> None:
    """A BMP of fixed dimensions: the same byte size whatever its pixels."""
    img.write_solid(path, (seed, 255 - seed, 7), size=(16, 16), format="BMP")


@pytest.mark.parametrize("how", ["in place, mtime restored (cp -p, touch -r)", "renamed over, mtime kept (rsync -a)"])
def test_replaced_file_with_the_same_size_and_mtime_is_never_served(tmp_path: Path, how: str) -> None:
    path = tmp_path / "next.bmp"
    write_same_size(path, 10)
    pre = Prefetcher()
    pre.schedule("k", 1, str(path))
    first = pre.take("k", 1, str(path))
    assert first is not None, "an unchanged file is served"

    pre.schedule("k", 1, str(path))
    pre._pending["k"][1].future.result()  # the old pixels are decoded and waiting
    before = os.stat(path)
    time.sleep(0.03)  # past the clock tick of the first write (the racy window's job in real use)
    if how.startswith("in place"):
        new = tmp_path / "new.bmp"
        write_same_size(new, 200)
        shutil.copyfile(new, path)  # same inode, rewritten
        shutil.copystat(new, path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        staging = tmp_path / ".next.bmp.tmp"
        write_same_size(staging, 200)
        os.utime(staging, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(staging, path)
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    assert pre.take("k", 1, str(path)) is None, "the stale prefetched pixels must not come out"
    assert prepare(str(path)).decoded.color[0, 0, 0] == 200


def test_a_file_changed_just_now_is_not_prefetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the timestamp granularity a rewrite could leave every stat field equal: decode it afresh."""
    monkeypatch.setattr(prefetch, "RACY_WINDOW_NS", 2_000_000_000)
    img.write_png(tmp_path / "fresh.png", 4, 4)
    calls: list[str] = []
    pre = Prefetcher(counting_prepare(calls))
    pre.schedule("k", 0, str(tmp_path / "fresh.png"))
    assert pre.take("k", 0, str(tmp_path / "fresh.png")) is None
    assert calls == [], "nothing was decoded in the background for nothing"


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


def test_two_images_ahead_are_decoded_at_once_and_each_handed_over_once(tmp_path: Path) -> None:
    for i in range(4):
        img.write_png(tmp_path / f"{i}.png", 4, 4, seed=i)
    started: list[str] = []
    both_running = threading.Barrier(2, timeout=5)

    def parallel_prepare(path: str, device=None, dtype=None, *color):
        started.append(os.path.basename(path))
        both_running.wait()  # deadlocks (BrokenBarrierError) unless two decodes run at once
        return prepare(path, device, dtype, *color)

    pre = Prefetcher(parallel_prepare, depth=2)
    pre.schedule("k", 1, str(tmp_path / "1.png"))
    pre.schedule("k", 2, str(tmp_path / "2.png"))
    pre.schedule("k", 2, str(tmp_path / "2.png"))  # already on its way: not decoded twice
    assert pre.take("k", 1, str(tmp_path / "1.png")) is not None
    assert pre.take("k", 2, str(tmp_path / "2.png")) is not None
    assert sorted(started) == ["1.png", "2.png"]
    plain = Prefetcher(depth=2)
    plain.schedule("k", 3, str(tmp_path / "3.png"))
    plain.schedule("k", 5, str(tmp_path / "3.png"))  # two places on: index 3 is dropped (depth 2)
    assert plain.take("k", 3, str(tmp_path / "3.png")) is None
