"""images_per_run: how a run is filled (utils/batch/run.py), recorded once (prompt_runs.LoaderRun),
and turned into one IMAGE/MASK batch (utils/images/tensors.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import imagefiles as img
import pytest
import torch
from batch_image_processing.utils.batch.batch import Batch
from batch_image_processing.utils.batch.prompt_runs import (
    SKIP_ON_ERROR,
    STOP_ON_ERROR,
    LoaderRun,
    PromptRun,
    RunInput,
    result_inputs,
)
from batch_image_processing.utils.batch.run import pick_run, prefetch_after
from batch_image_processing.utils.batch.state import BatchSettings, StateStore
from batch_image_processing.utils.images import prefetch
from batch_image_processing.utils.images.decode import DecodeError, decode_image
from batch_image_processing.utils.images.prefetch import Prefetcher, decode_only
from batch_image_processing.utils.images.tensors import to_batch_tensors, to_tensors
from batch_image_processing.utils.saving.naming import NamingError

LOCK = threading.RLock()


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The files here are seconds old at most: trust their timestamps (prefetch has the window's test)."""
    monkeypatch.setattr(prefetch, "RACY_WINDOW_NS", 0)


def make_batch(tmp_path: Path, sizes: list[tuple[int, int] | None]) -> Batch:
    """img0..imgN: an RGB PNG of each (width, height), an unreadable file where the size is None."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, size in enumerate(sizes):
        if size is None:
            img.write_text_as_image(folder / f"img{i}.png")
        else:
            img.write_png(folder / f"img{i}.png", *size, seed=i)
    settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)", "wf")
    return Batch.new_pass(settings, 0, StateStore(str(tmp_path / "state")))


def counting_decode(calls: list[str]):
    def decode(path: str, device=None, dtype=None, color_profile: str = "Convert to sRGB", into=None):
        calls.append(os.path.basename(path))
        return decode_only(path, device, dtype, color_profile, into)
    return decode


def take(batch: Batch, k: int, policy: str = STOP_ON_ERROR, calls: list[str] | None = None,
         prefetcher: Prefetcher | None = None) -> LoaderRun | None:
    loaded = pick_run(batch, k, policy, prefetcher or Prefetcher(), "Convert to sRGB", LOCK,
                      decode=counting_decode(calls if calls is not None else []))
    return LoaderRun.of(batch, loaded, policy) if loaded is not None else None


def indexes(run: LoaderRun | None) -> list[int]:
    assert run is not None
    return [i.index for i in run.images]


def test_a_run_ends_at_another_size_and_that_image_starts_the_next_run_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (8, 6), (6, 8)
    batch = make_batch(tmp_path, [a, a, b, a, a, a, a])
    calls: list[str] = []  # inline and on the pool
    monkeypatch.setattr(prefetch, "decode_only", counting_decode(calls))
    pool = Prefetcher()
    first = take(batch, 4, calls=calls, prefetcher=pool)
    assert indexes(first) == [0, 1] and batch.state.next_index == 0, "the position moves only when the run ends"
    assert first is not None
    first.record_finished(None)
    assert (batch.state.next_index, batch.state.done) == (2, 2)
    second = take(batch, 4, calls=calls, prefetcher=pool)
    assert indexes(second) == [2]
    assert calls.count("img2.png") == 1, "the image that ended the run was decoded again"
    assert second is not None
    second.record_finished(None)
    assert indexes(take(batch, 4, calls=calls, prefetcher=pool)) == [3, 4, 5, 6]
    assert sorted(calls) == [f"img{i}.png" for i in range(7)], "an image was decoded twice"


def test_an_unreadable_image_is_passed_over_and_recorded_with_its_run(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [(8, 8), None, (8, 8), (8, 8), (8, 8), (8, 8)])
    run = take(batch, 4, SKIP_ON_ERROR)
    assert indexes(run) == [0, 2, 3, 4], "the run was not filled with the next readable images"
    assert run is not None and batch.state.skipped == [] and batch.state.next_index == 0
    run.give_back("")  # cancelled: nothing recorded, the unreadable file is met again on resume
    assert batch.state.skipped == [] and batch.state.next_index == 0
    run.record_finished(None)
    assert (batch.state.next_index, batch.state.done, [s["file"] for s in batch.state.skipped]) == (5, 4, ["img1.png"])


def test_a_failed_run_skips_every_image_of_it(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [(8, 8)] * 5)
    prompt = PromptRun("p", loaders=[run for run in [take(batch, 3, SKIP_ON_ERROR)] if run is not None])
    batch.begin_chain("p", 0.0, None)
    go_on, errors = prompt.record("error", "node 2 failed")
    assert go_on is False and errors == {}  # no template: no next prompt in this test
    assert [s["file"] for s in batch.state.skipped] == ["img0.png", "img1.png", "img2.png"]
    assert batch.state.next_index == 3 and batch.state.done == 0


def test_stop_on_error_names_every_file_of_the_run_and_keeps_the_position(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [(8, 8)] * 4)
    prompt = PromptRun("p", loaders=[run for run in [take(batch, 3)] if run is not None])
    batch.begin_chain("p", 0.0, None)
    _, errors = prompt.record("error", "boom")
    assert errors[batch.key] == "img0.png, img1.png, img2.png: boom" and batch.state.next_index == 0


def test_stop_on_error_raises_for_an_unreadable_image_inside_a_run(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [(8, 8), (8, 8), None])
    with pytest.raises(DecodeError):
        take(batch, 4)
    assert batch.state.next_index == 0


def test_nothing_readable_left_records_the_skips_and_returns_none(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [None, None])
    assert take(batch, 4, SKIP_ON_ERROR) is None
    assert batch.state.next_index == 2 and len(batch.state.skipped) == 2


def test_the_next_run_is_decoded_on_the_pool_while_the_current_one_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_batch(tmp_path, [(8, 8)] * 7)
    background: list[str] = []
    monkeypatch.setattr(prefetch, "decode_only", counting_decode(background))
    pool = Prefetcher()
    inline: list[str] = []  # images the pool had not started: the prompt's thread decodes them
    loaded = pick_run(batch, 3, STOP_ON_ERROR, pool, "Convert to sRGB", LOCK, decode=counting_decode(inline))
    assert loaded is not None
    prefetch_after(batch, loaded, 3, pool, (None, None, "Convert to sRGB"))
    for _ in range(100):  # the next run is decoded while "the workflow" runs
        if sum(name in background for name in ("img3.png", "img4.png", "img5.png")) == 3:
            break
        threading.Event().wait(0.01)
    LoaderRun.of(batch, loaded, STOP_ON_ERROR).record_finished(None)
    nxt = pick_run(batch, 3, STOP_ON_ERROR, pool, "Convert to sRGB", LOCK, decode=counting_decode(inline))
    assert nxt is not None and [m.index for m in nxt.members] == [3, 4, 5]
    assert not {"img3.png", "img4.png", "img5.png"} & set(inline), "the next run was not prefetched"
    assert sorted(background + inline) == [f"img{i}.png" for i in range(6)], "an image was decoded twice"


def test_a_decode_the_pool_has_not_started_is_left_to_the_prompt_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "a.png")
    img.write_png(tmp_path / "a.png", 4, 4)
    pool = Prefetcher()
    pool.schedule_run("k", [(0, path)])
    assert pool.take("k", 0, path) is not None
    gate = threading.Event()
    for _ in range(prefetch.RUN_DECODE_THREADS):  # every thread of the pool busy
        pool._run_executor.submit(gate.wait)  # type: ignore[union-attr]
    pool.schedule_run("k", [(1, path), (2, path)])
    try:
        assert pool.take("k", 1, path, steal=True) is None, "waited for a busy pool"
    finally:
        gate.set()
    assert pool.take("k", 2, path) is not None


def test_batch_tensors_equal_the_single_images_stacked(tmp_path: Path) -> None:
    decoded = [decode_image(str(path)) for path in img.write_pixel_kinds(tmp_path)]
    image, mask = to_batch_tensors(decoded, "cpu", torch.float32)
    singles = [to_tensors(d, "cpu", torch.float32) for d in decoded]
    assert image.shape == (4, 4, 5, 3) and mask.shape == (4, 4, 5) and image.dtype == torch.float32
    assert torch.equal(image, torch.cat([s[0] for s in singles]))
    assert torch.equal(mask, torch.cat([s[1] for s in singles]))
    # float16 (--fp16-intermediates): each value the float32 one correctly rounded, 16-bit sources too
    half, half_mask = to_batch_tensors(decoded, "cpu", torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half, image.to(torch.float16))
    assert torch.equal(half_mask, mask.to(torch.float16))


def test_a_shared_run_claims_its_images_together_and_gives_back_those_of_another_size(tmp_path: Path) -> None:
    a, b = (8, 6), (6, 8)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, size in enumerate([a, a, b, a, a]):
        img.write_png(folder / f"img{i}.png", *size, seed=i)
    settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)", "wf", shared_job="runs")
    batch = Batch.new_pass(settings, 0, StateStore(str(tmp_path / "state")))
    assert batch.shared is not None
    try:
        runs = []
        while (run := take(batch, 4)) is not None:
            assert batch.shared.progress()["claimed"] == len(run.images), "a claim of another size was kept"
            runs.append(indexes(run))
            run.record_finished(None)
        assert runs == [[0, 1], [2], [3, 4]]
        progress = batch.shared.progress()
        assert (progress["done"], progress["claimed"], batch.shared.is_complete()) == (5, 0, True)
    finally:
        batch.shared.close()


def test_each_result_belongs_to_its_own_input_and_a_changed_count_is_refused() -> None:
    a, b = (RunInput(f"sub/{n}.png", f"/in/sub/{n}.png", n, i, None, None, "key") for i, n in enumerate("ab"))
    assert result_inputs([a, b], 2, "image", ".") == [a, b]
    assert result_inputs([a], 3, "image", ".") == [a, a, a]  # one input, several results: all its own
    assert result_inputs([], 2, "image", ".") == [None, None]  # not from a loader
    for count in (1, 4):
        expected = rf"^{count} text\(s\) came for a run of 2 inputs \(sub/a.png, sub/b.png\)!$"
        with pytest.raises(NamingError, match=expected):
            result_inputs([a, b], count, "text", "!")
