"""A run's batch written by the decoding threads (utils/images/run_batch.py): the same values as
the images converted one by one, never a slice with other pixels than the run's own."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
import torch
from batch_image_processing.utils.batch.batch import Batch
from batch_image_processing.utils.batch.prompt_runs import STOP_ON_ERROR, LoaderRun
from batch_image_processing.utils.batch.run import pick_run, prefetch_after
from batch_image_processing.utils.batch.state import BatchSettings, StateStore
from batch_image_processing.utils.images import run_batch
from batch_image_processing.utils.images.decode import decode_image
from batch_image_processing.utils.images.prefetch import Prefetcher
from batch_image_processing.utils.images.run_batch import RunBatch
from batch_image_processing.utils.images.tensors import to_tensors

LOCK = threading.RLock()
CPU = ("cpu", torch.float32)


pytestmark = pytest.mark.usefixtures("pool_writes_every_image")


def singles(decoded: list) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [to_tensors(d, *CPU) for d in decoded]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def test_slices_written_by_several_threads_equal_the_images_converted_one_by_one(tmp_path: Path) -> None:
    decoded = [decode_image(str(path)) for path in img.write_pixel_kinds(tmp_path)]
    batch = RunBatch([10, 11, 12, 13])
    threads = [threading.Thread(target=batch.fill, args=(10 + i, d)) for i, d in enumerate(decoded)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = batch.tensors([(10 + i, d) for i, d in enumerate(decoded)])
    assert written is not None
    image, mask = singles(decoded)
    assert torch.equal(written[0], image) and torch.equal(written[1], mask)
    part = batch.tensors([(11, decoded[1]), (12, decoded[2])])  # a run that ended early: a view of its slices
    assert part is not None and torch.equal(part[0], image[1:3])


def test_another_size_claims_no_slice_and_the_run_is_not_taken_from_this_batch(tmp_path: Path) -> None:
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    img.write_png(tmp_path / "b.png", 4, 6, seed=2)
    a, b = decode_image(str(tmp_path / "a.png")), decode_image(str(tmp_path / "b.png"))
    batch = RunBatch([0, 1, 2])
    assert batch.fill(1, b) and not batch.fill(0, a), "the first image decoded sets the size"
    assert batch.tensors([(0, a)]) is None
    assert batch.tensors([(1, b)]) is not None


def test_a_slice_holding_other_pixels_is_never_handed_out(tmp_path: Path) -> None:
    """A file rewritten while the pool read it: the pool's slice holds the old pixels, the run
    the new ones: the run is not taken from this batch."""
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    old = decode_image(str(tmp_path / "a.png"))
    img.write_png(tmp_path / "a.png", 6, 4, seed=2)
    new = decode_image(str(tmp_path / "a.png"))
    batch = RunBatch([0, 1])
    assert batch.fill(0, old)
    assert not batch.fill(0, new) and batch.tensors([(0, new)]) is None
    assert batch.tensors([(0, old)]) is not None


def test_slices_that_do_not_follow_each_other_are_not_a_run(tmp_path: Path) -> None:
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    a = decode_image(str(tmp_path / "a.png"))
    batch = RunBatch([0, 1, 2])
    assert batch.tensors([(0, a), (2, a)]) is None
    assert batch.tensors([(7, a)]) is None, "an image the batch was not made for"


def make_batch(tmp_path: Path, sizes: list[tuple[int, int]]) -> Batch:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, size in enumerate(sizes):
        img.write_png(folder / f"img{i}.png", *size, seed=i)
    settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)", "wf")
    return Batch.new_pass(settings, 0, StateStore(str(tmp_path / "state")))


def next_run(batch: Batch, pool: Prefetcher, k: int) -> tuple[list[int], torch.Tensor, torch.Tensor, bool]:
    """The run's indices, IMAGE, MASK, and whether the IMAGE is a view of a batch the pool wrote."""
    loaded = pick_run(batch, k, STOP_ON_ERROR, pool, "Convert to sRGB", LOCK, into_batch=True)
    assert loaded is not None
    prefetch_after(batch, loaded, k, pool, ("cpu", torch.float32, "Convert to sRGB"))
    pool_arrays = [m.image.run_batch._image for m in loaded.members if m.image.run_batch is not None]
    image, mask = loaded.tensors(*CPU)
    assert all(m.image.run_batch is None for m in loaded.members), "an image still holds its run's batch"
    LoaderRun.of(batch, loaded, STOP_ON_ERROR).record_finished(None)
    from_pool = any(a is not None and a.ctypes.data <= image.data_ptr() < a.ctypes.data + a.nbytes
                    for a in pool_arrays)
    return [m.index for m in loaded.members], image, mask, from_pool


def test_runs_of_a_mixed_folder_come_from_the_pool_with_every_image_its_own_pixels(tmp_path: Path) -> None:
    a, b = (8, 6), (6, 8)
    sizes = [a, a, a, b, b, a, a, a, a, a]
    batch = make_batch(tmp_path, sizes)
    expected = [decode_image(batch.full_path(i)) for i in range(len(sizes))]
    pool = Prefetcher()
    seen: list[int] = []
    from_pool = 0
    while batch.state.next_index < len(sizes):
        indices, image, mask, pooled = next_run(batch, pool, 3)
        want_image, want_mask = singles([expected[i] for i in indices])
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask), f"run {indices} has other pixels"
        from_pool += pooled
        seen += indices
    assert seen == list(range(len(sizes)))
    assert from_pool >= 1, "no run was handed over from a batch the pool wrote"


def test_a_file_replaced_after_the_pool_wrote_it_comes_out_with_its_new_pixels(tmp_path: Path) -> None:
    batch = make_batch(tmp_path, [(8, 6)] * 6)
    pool = Prefetcher()
    next_run(batch, pool, 3)  # the pool now writes images 3..5
    for _ in range(200):
        if not pool.pending_keys() or all(p.future.done() for p in pool._pending.get(batch.key, {}).values()):
            break
        threading.Event().wait(0.01)
    path = batch.full_path(4)
    img.write_png(Path(path + ".new.png"), 8, 6, seed=99)
    os.replace(path + ".new.png", path)  # a new inode: the prefetched image is stale
    indices, image, _, _ = next_run(batch, pool, 3)
    assert indices == [3, 4, 5]
    fresh = to_tensors(decode_image(path), *CPU)[0][0]
    assert torch.equal(image[1], fresh), "the pool's stale slice came out"
    assert not np.array_equal(image[1].numpy(), to_tensors(decode_image(batch.full_path(3)), *CPU)[0][0].numpy())


def test_a_batch_too_big_for_the_memory_writes_nothing_and_the_run_converts_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge first image sizes the batch for all n images of the run; the allocation fails."""
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    a = decode_image(str(tmp_path / "a.png"))
    real_empty = np.empty

    def no_memory(shape, dtype=float):
        if len(shape) == 4:
            raise MemoryError("Unable to allocate 26 GiB")
        return real_empty(shape, dtype)

    monkeypatch.setattr(run_batch.np, "empty", no_memory)
    batch = RunBatch([0, 1])
    assert not batch.fill(0, a) and not batch.fill(1, a)
    assert batch.tensors([(0, a)]) is None


def test_a_batch_over_the_size_limit_is_not_allocated_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img.write_png(tmp_path / "a.png", 64, 64, seed=1)
    a = decode_image(str(tmp_path / "a.png"))
    monkeypatch.setattr(run_batch, "MAX_BATCH_BYTES", 16 * 64 * 64 * 3 - 1)  # 3 slots of image + mask
    assert not RunBatch([0, 1, 2]).fill(0, a)
    assert RunBatch([0, 1]).fill(0, a)


def test_no_slice_after_an_image_of_another_size_is_written(tmp_path: Path) -> None:
    """Alternating sizes: the run ends at the first other size, so the rest of the batch is never used."""
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    img.write_png(tmp_path / "b.png", 4, 6, seed=2)
    a, b = decode_image(str(tmp_path / "a.png")), decode_image(str(tmp_path / "b.png"))
    batch = RunBatch([0, 1, 2, 3])
    assert batch.fill(0, a) and not batch.fill(1, b)
    assert not batch.fill(2, a) and not batch.fill(3, a), "slices after the run's end were written"
    assert batch.tensors([(0, a)]) is not None


def test_a_run_partly_on_its_way_already_gets_no_batch_of_its_own(tmp_path: Path) -> None:
    """A window sliding by one image (every run one image of alternating sizes) would otherwise
    give each new image a batch for the whole run, holding one stray slice each."""
    paths = []
    for i in range(3):
        img.write_png(tmp_path / f"i{i}.png", 6, 4, seed=i)
        paths.append(str(tmp_path / f"i{i}.png"))
    pool = Prefetcher()
    pool.schedule_run("k", [(0, paths[0]), (1, paths[1])], "Convert to sRGB", [0, 1])
    first = pool.take("k", 0, paths[0])
    pool.schedule_run("k", [(1, paths[1]), (2, paths[2])], "Convert to sRGB", [1, 2])
    newcomer = pool.take("k", 2, paths[2])
    assert first is not None and first.run_batch is not None, "a fresh run is written by the pool"
    assert newcomer is not None and newcomer.run_batch is None, "the newcomer got a batch for strays"
