"""utils/images/host_buffers.py: an image's memory is handed out again only once nothing holds it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from batch_image_processing.utils.images import host_buffers as hb
from batch_image_processing.utils.images.decode import DecodedImage
from batch_image_processing.utils.images.run_batch import RunBatch
from batch_image_processing.utils.images.tensors import to_batch_tensors, to_tensors

SHAPE = (2, 512, 1024, 3)  # 12 MiB of float32: above MIN_BYTES


def _address(arr: np.ndarray | torch.Tensor) -> int:
    return arr.data_ptr() if isinstance(arr, torch.Tensor) else arr.__array_interface__["data"][0]


def test_a_released_buffer_is_handed_out_again() -> None:
    pool = hb.HostBuffers()
    first = pool.empty(SHAPE, np.float32)
    address = _address(first)
    del first
    again = pool.empty(SHAPE, np.float32)
    assert _address(again) == address
    assert pool.kept() == 1


@pytest.mark.parametrize("holder", [
    lambda a: torch.from_numpy(a),
    lambda a: torch.from_numpy(a[1:])[0, 5:],  # a view of a view of one slice
    lambda a: torch.from_numpy(a).unsqueeze(0).numpy(),
    lambda a: a[0],
])
def test_a_buffer_anything_still_holds_is_not_handed_out(holder) -> None:
    pool = hb.HostBuffers()
    first = pool.empty(SHAPE, np.float32)
    address = _address(first)
    held = holder(first)
    del first
    other = pool.empty(SHAPE, np.float32)
    other_address = _address(other)
    assert other_address != address
    del other
    assert _address(pool.empty(SHAPE, np.float32)) == other_address  # the first is still held
    del held
    assert _address(pool.empty(SHAPE, np.float32)) in (address, other_address)
    assert pool.kept() == 2


def test_other_dtype_or_shape_is_another_buffer() -> None:
    pool = hb.HostBuffers()
    a = pool.empty(SHAPE, np.float32)
    address = _address(a)
    del a
    b = pool.empty(SHAPE, np.float16)
    c = pool.empty((3, *SHAPE[1:]), np.float32)
    assert b.dtype == np.float16 and c.shape == (3, *SHAPE[1:])
    assert _address(b) != address  # a is kept (two sizes are): its memory is not free


def test_small_arrays_are_not_kept() -> None:
    pool = hb.HostBuffers()
    pool.empty((1, 64, 64, 3), np.float32)
    assert pool.kept() == 0


def test_at_most_max_per_shape_are_kept_and_more_are_still_made() -> None:
    pool = hb.HostBuffers()
    held = [pool.empty(SHAPE, np.float32) for _ in range(hb.MAX_PER_SHAPE + 2)]
    assert len({_address(a) for a in held}) == hb.MAX_PER_SHAPE + 2
    assert pool.kept() == hb.MAX_PER_SHAPE


def test_sizes_not_asked_for_lately_are_forgotten() -> None:
    pool = hb.HostBuffers()
    for rows in range(1, hb.MAX_SHAPES + 2):
        pool.empty((rows, *SHAPE[1:]), np.float32)
    assert pool.kept() == hb.MAX_SHAPES


def _wait_kept(pool: hb.HostBuffers, count: int) -> None:
    deadline = time.monotonic() + 5
    while pool.kept() != count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.kept() == count


def test_trim_forgets_every_buffer_after_its_grace_and_one_in_use_stays_valid() -> None:
    pool = hb.HostBuffers()
    in_use = pool.empty(SHAPE, np.float32)
    in_use[:] = 7.0
    pool.empty(SHAPE, np.float32)
    pool.trim(grace=0.3)
    assert pool.kept() == 2  # kept for a batch that starts right after
    _wait_kept(pool, 0)
    fresh = pool.empty(SHAPE, np.float32)
    fresh[:] = 1.0
    assert float(in_use.min()) == 7.0 and float(in_use.max()) == 7.0


def test_a_batch_that_asks_during_the_grace_keeps_the_buffers() -> None:
    pool = hb.HostBuffers()
    pool.empty(SHAPE, np.float32)
    pool.trim(grace=0.2)
    time.sleep(0.05)
    pool.empty(SHAPE, np.float32)  # the next batch began
    time.sleep(0.4)
    assert pool.kept() == 1
    pool.trim(grace=0.05)  # and ended
    _wait_kept(pool, 0)


def test_threads_never_share_a_buffer_in_use() -> None:
    pool, errors = hb.HostBuffers(), []

    def work(mark: float) -> None:
        for _ in range(30):
            buf = pool.empty(SHAPE, np.float32)
            buf[:, :8] = mark
            time.sleep(0.0005)
            if float(buf[:, :8].min()) != mark or float(buf[:, :8].max()) != mark:
                errors.append(mark)
            del buf

    threads = [threading.Thread(target=work, args=(float(n),)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.kept() <= hb.MAX_PER_SHAPE


def _decoded(value: int) -> DecodedImage:
    return DecodedImage(np.full((512, 1024, 3), value, np.uint8), None, 255.0)


def test_an_image_tensor_keeps_its_pixels_while_it_is_held_and_its_memory_comes_back_after() -> None:
    hb.host_buffers.trim(grace=0)
    _wait_kept(hb.host_buffers, 0)
    first, _ = to_tensors(_decoded(51))
    address = first.data_ptr()
    second, _ = to_tensors(_decoded(102))  # first still held: other memory
    assert second.data_ptr() != address
    assert torch.all(first == 51 / 255.0) and torch.all(second == 102 / 255.0)
    del first
    third, _ = to_tensors(_decoded(153))
    assert third.data_ptr() == address
    assert torch.all(second == 102 / 255.0) and torch.all(third == 153 / 255.0)
    hb.host_buffers.trim(grace=0)
    _wait_kept(hb.host_buffers, 0)


def test_run_batches_reuse_a_released_batch_and_never_one_a_node_still_holds() -> None:
    hb.host_buffers.trim(grace=0)
    _wait_kept(hb.host_buffers, 0)
    images = [_decoded(10 * n) for n in range(1, 4)]
    first, _ = to_batch_tensors(images)
    kept_view = first[1]  # a node holding one image of the run
    address = first.data_ptr()
    del first
    run = RunBatch([0, 1, 2])
    assert all(run.fill(i, d) for i, d in enumerate(images[::-1]))
    second, _ = run.tensors(list(enumerate(images[::-1])))
    assert second.data_ptr() != address
    assert torch.all(kept_view == 20 / 255.0)
    del kept_view
    third, _ = to_batch_tensors(images)
    assert third.data_ptr() == address
    assert torch.all(second[0] == 30 / 255.0) and torch.all(third[0] == 10 / 255.0)
    hb.host_buffers.trim(grace=0)
    _wait_kept(hb.host_buffers, 0)
