"""utils/images/decode_processes.py with real worker processes: the same pixels, errors and
metadata as decoding here, and every image still decoded when a worker cannot start or dies."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import iccprofiles
import imagefiles
import numpy as np
import pytest
from batch_image_processing.utils.images import decode_processes as dp
from batch_image_processing.utils.images.color import CONVERT_TO_SRGB, KEEP_SOURCE
from batch_image_processing.utils.images.decode import DecodeError, decode_image
from batch_image_processing.utils.images.pixel_limit import MAX_PIXELS_ENV, pillow_limit_lifted
from batch_image_processing.utils.images.prefetch import Prefetcher, PreparedImage, decode_only
from PIL import Image


@pytest.fixture()
def pool():
    with ThreadPoolExecutor(2) as executor:
        yield executor


def _wait_available(processes: dp.DecodeProcesses) -> None:
    deadline = time.monotonic() + 60
    while not processes.available():
        assert time.monotonic() < deadline, "no decode process became ready"
        time.sleep(0.02)


def _processes(pool: ThreadPoolExecutor, count: int = 2) -> dp.DecodeProcesses:
    processes = dp.DecodeProcesses(count, PreparedImage, lambda p, m: decode_only(p, None, None, m),
                                   lambda work: pool.submit(work))
    _wait_available(processes)
    return processes


def _files(folder: Path) -> list[Path]:
    paths = imagefiles.write_pixel_kinds(folder)
    imagefiles.write_rgba_png(folder / "rgba.png")
    imagefiles.write_rgb16_png(folder / "rgb16.png", alpha=True)
    imagefiles.write_exif_jpeg(folder / "rotated.jpg", orientation=6)
    imagefiles.write_cmyk_jpeg(folder / "cmyk.jpg")
    Image.fromarray(imagefiles.rgb_noise(12, 9)).save(folder / "p3.png", icc_profile=iccprofiles.display_p3())
    y, x = np.mgrid[0:131, 0:257]
    photo = np.stack([x % 256, y * 2 % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(photo).save(folder / "photo.jpg", quality=85)  # 4:2:0, odd size
    Image.fromarray(photo).save(folder / "progressive.jpg", quality=70, progressive=True)
    Image.fromarray(photo[..., 1]).save(folder / "gray.jpg", quality=90)
    names = ("rgba.png", "rgb16.png", "rotated.jpg", "cmyk.jpg", "p3.png", "photo.jpg", "progressive.jpg", "gray.jpg")
    return [*paths, *(folder / n for n in names)]


@pytest.mark.parametrize("mode", [CONVERT_TO_SRGB, KEEP_SOURCE])
def test_a_worker_decodes_exactly_as_this_process_does(tmp_path: Path, pool, mode: str) -> None:
    processes = _processes(pool)
    try:
        paths = _files(tmp_path)
        futures = [processes.submit(str(p), mode) for p in paths]
        for path, future in zip(paths, futures, strict=True):
            got, want = future.result(timeout=60).decoded, decode_image(str(path), mode)
            assert got.color.dtype == want.color.dtype and np.array_equal(got.color, want.color), path.name
            assert (got.alpha is None) == (want.alpha is None), path.name
            if want.alpha is not None:
                assert np.array_equal(got.alpha, want.alpha), path.name
            assert (got.scale, got.icc_profile, got.exif) == (want.scale, want.icc_profile, want.exif), path.name
    finally:
        processes.close()


def test_an_unreadable_file_is_the_same_decode_error(tmp_path: Path, pool) -> None:
    processes = _processes(pool)
    try:
        for name, write in (("trunc.png", imagefiles.write_truncated_png), ("text.png", imagefiles.write_text_as_image),
                            ("empty.png", imagefiles.write_zero_byte)):
            write(tmp_path / name)
            with pytest.raises(DecodeError) as here:
                decode_image(str(tmp_path / name))
            with pytest.raises(DecodeError) as there:
                processes.submit(str(tmp_path / name), CONVERT_TO_SRGB).result(timeout=60)
            assert str(there.value) == str(here.value)
    finally:
        processes.close()


def test_the_pixel_limit_in_force_here_holds_in_the_worker(tmp_path: Path, pool, monkeypatch) -> None:
    processes = _processes(pool)
    try:
        imagefiles.write_png(tmp_path / "big.png", 40, 30)
        monkeypatch.setenv(MAX_PIXELS_ENV, "100")
        with pytest.raises(DecodeError, match="above the limit of 100 pixels"):
            processes.submit(str(tmp_path / "big.png"), CONVERT_TO_SRGB).result(timeout=60)
        monkeypatch.delenv(MAX_PIXELS_ENV)
        assert processes.submit(str(tmp_path / "big.png"), CONVERT_TO_SRGB).result(timeout=60).decoded.width == 40
    finally:
        processes.close()


def test_images_held_by_a_worker_that_dies_are_decoded_here(tmp_path: Path, pool) -> None:
    processes = _processes(pool, count=1)
    try:
        paths = [tmp_path / f"{n}.png" for n in range(40)]
        want = [imagefiles.write_png(p, 64, 48, seed=n) for n, p in enumerate(paths)]
        futures = [processes.submit(str(p), CONVERT_TO_SRGB) for p in paths]
        processes._workers[0].process.kill()
        for future, pixels in zip(futures, want, strict=True):
            assert np.array_equal(future.result(timeout=60).decoded.color, pixels)
        _wait_available(processes)
    finally:
        processes.close()


def test_workers_that_keep_dying_are_given_up(tmp_path: Path, pool) -> None:
    processes = _processes(pool, count=1)
    try:
        imagefiles.write_png(tmp_path / "a.png")
        for _ in range(dp.MAX_DEATHS):
            _wait_available(processes)
            worker = processes._workers[0]
            worker.process.kill()
            while not worker.gone:
                time.sleep(0.01)
        assert not processes.available()
        assert processes.submit(str(tmp_path / "a.png"), CONVERT_TO_SRGB).result(timeout=60).decoded.width == 16
    finally:
        processes.close()


def test_a_worker_that_cannot_start_leaves_decoding_to_threads(tmp_path: Path, pool, monkeypatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    processes = dp.DecodeProcesses(2, PreparedImage, lambda p, m: decode_only(p, None, None, m),
                                   lambda work: pool.submit(work))
    assert not processes.available()
    imagefiles.write_png(tmp_path / "a.png")
    assert processes.submit(str(tmp_path / "a.png"), CONVERT_TO_SRGB).result(timeout=60).decoded.width == 16


def test_close_ends_the_workers(pool) -> None:
    processes = _processes(pool)
    workers = list(processes._workers)
    processes.close()
    for worker in workers:
        assert worker.process.wait(timeout=10) is not None
    assert not processes.available()


def test_the_prefetch_sends_runs_of_small_images_to_the_processes_and_big_ones_to_threads(
        tmp_path: Path, monkeypatch, prefetch_trusts_new_files) -> None:
    monkeypatch.setenv("BATCH_IMAGE_DECODE_PROCESSES", "1")
    prefetcher = Prefetcher()
    assert prefetcher._processes is not None
    sent: list[str] = []
    real_submit = prefetcher._processes.submit
    monkeypatch.setattr(prefetcher._processes, "submit",
                        lambda path, mode: sent.append(path) or real_submit(path, mode))
    try:
        small = [tmp_path / f"s{n}.png" for n in range(6)]
        big = [tmp_path / f"b{n}.png" for n in range(2)]
        for n, p in enumerate(small):
            imagefiles.write_png(p, 32, 32, seed=n)
        for n, p in enumerate(big):
            imagefiles.write_png(p, 1024, 512, seed=n)
        _wait_available(prefetcher._processes)
        prefetcher.schedule_run("k", [(0, str(small[0])), (1, str(small[1]))])  # size unknown: threads
        for i in (0, 1):
            assert prefetcher.take("k", i, str(small[i])) is not None
        assert sent == []
        prefetcher.schedule_run("k", [(i, str(small[i])) for i in range(2, 6)])  # small, as the last
        for i in range(2, 6):
            assert np.array_equal(prefetcher.take("k", i, str(small[i])).decoded.color,
                                  decode_image(str(small[i])).color)
        assert sent == [str(p) for p in small[2:]]
        prefetcher.schedule_run("big", [(0, str(big[0]))])
        prefetcher.take("big", 0, str(big[0]))
        prefetcher.schedule_run("big", [(1, str(big[1]))])  # big, as the last: threads
        assert prefetcher.take("big", 1, str(big[1])).decoded.width == 1024
        assert len(sent) == 4
    finally:
        prefetcher._processes.close()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")
def test_a_frozen_worker_is_killed_and_its_images_decoded_here(tmp_path: Path, monkeypatch,
                                                               prefetch_trusts_new_files) -> None:
    monkeypatch.setenv("BATCH_IMAGE_DECODE_PROCESSES", "1")
    monkeypatch.setattr(dp, "HUNG_S", 0.5)
    prefetcher = Prefetcher()
    assert prefetcher._processes is not None
    try:
        paths = [tmp_path / f"{n}.png" for n in range(10)]
        want = [imagefiles.write_png(p, 40, 30, seed=n) for n, p in enumerate(paths)]
        _wait_available(prefetcher._processes)
        prefetcher.schedule_run("k", [(0, str(paths[0]))])
        prefetcher.take("k", 0, str(paths[0]))  # small: the next runs go to the worker
        worker = prefetcher._processes._workers[0]
        os.kill(worker.process.pid, signal.SIGSTOP)
        prefetcher.schedule_run("k", [(i, str(paths[i])) for i in range(1, 10)])
        started = time.monotonic()
        for i in range(1, 10):
            assert np.array_equal(prefetcher.take("k", i, str(paths[i])).decoded.color, want[i])
        assert time.monotonic() - started < 30
        assert worker.process.wait(timeout=10) is not None  # killed, not left stopped
    finally:
        prefetcher._processes.close()


def test_a_limit_lifted_for_a_decode_here_is_not_what_a_worker_gets(tmp_path: Path, pool) -> None:
    """Pillow's limit is lifted while this process decodes an image it has checked itself; a worker
    asked meanwhile still refuses an image above the real limit."""
    processes = _processes(pool)
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 500
        imagefiles.write_png(tmp_path / "big.png", 40, 30)
        with pillow_limit_lifted(None):
            assert Image.MAX_IMAGE_PIXELS is None
            future = processes.submit(str(tmp_path / "big.png"), CONVERT_TO_SRGB)
            with pytest.raises(DecodeError, match="above the limit of 500 pixels"):
                future.result(timeout=60)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
        processes.close()


@pytest.mark.parametrize("answer", [("ok", "not pixels"), ("failed", "RuntimeError: boom"), ("what",), ()])
def test_an_answer_that_makes_no_image_is_decoded_here(tmp_path: Path, pool, answer: tuple) -> None:
    processes = dp.DecodeProcesses(1, PreparedImage, lambda p, m: decode_only(p, None, None, m),
                                   lambda work: pool.submit(work))
    want = imagefiles.write_png(tmp_path / "a.png")
    future = Future()
    future.set_running_or_notify_cancel()

    worker = SimpleNamespace(held={7: (str(tmp_path / "a.png"), CONVERT_TO_SRGB, future)})
    processes._answered(worker, 7, answer)
    assert np.array_equal(future.result(timeout=60).decoded.color, want)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_never_imports_torch(tmp_path: Path, pool) -> None:
    """torch would add about 700 MB to every worker: JPEGs are decoded by Pillow there, and a
    16-bit RGB PNG (torchvision's libpng) is decoded by the loader itself, with all 16 bits."""
    processes = _processes(pool, count=1)
    try:
        paths = _files(tmp_path)
        for path in paths:
            processes.submit(str(path), CONVERT_TO_SRGB).result(timeout=60)
        sixteen = processes.submit(str(tmp_path / "rgb16.png"), CONVERT_TO_SRGB).result(timeout=60).decoded
        assert sixteen.scale == 65535.0 and sixteen.color.dtype == np.uint16
        status = Path(f"/proc/{processes._workers[0].process.pid}/status").read_text()
        rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        assert rss_kb < 200_000, f"a decode worker uses {rss_kb // 1024} MB: torch was imported"
    finally:
        processes.close()


def test_an_image_no_worker_can_take_while_a_run_is_scheduled_goes_to_a_thread(
        tmp_path: Path, monkeypatch, prefetch_trusts_new_files) -> None:
    """The workers were ready when the run was routed to them and are gone when its images are
    sent: the images go to the run pool from inside schedule_run (which holds the prefetch's lock)."""
    monkeypatch.setenv("BATCH_IMAGE_DECODE_PROCESSES", "1")
    prefetcher = Prefetcher()
    assert prefetcher._processes is not None
    monkeypatch.setattr(prefetcher._processes, "available", lambda: True)  # but no worker is ready
    paths = [tmp_path / f"{n}.png" for n in range(3)]
    want = [imagefiles.write_png(p, 20, 10, seed=n) for n, p in enumerate(paths)]
    prefetcher._pixels["k"] = 200
    got: list = []

    def run() -> None:
        prefetcher.schedule_run("k", [(i, str(p)) for i, p in enumerate(paths)])
        got.extend(prefetcher.take("k", i, str(p)).decoded.color for i, p in enumerate(paths))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "scheduling deadlocked"
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)) and len(got) == 3
    prefetcher._processes.close()
