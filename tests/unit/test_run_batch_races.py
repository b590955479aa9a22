"""Attacks on the runs the decoding pool writes into their batch (utils/images/run_batch.py): a slice
asked for while its writer is still at it, two decodes of one file racing for one slice, and a
random walk over a folder whose images_per_run changes from run to run while files are replaced,
resized and made unreadable ahead of the position (every run checked against a fresh decode)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
import torch
from batch_image_processing.utils.batch.batch import Batch
from batch_image_processing.utils.batch.prompt_runs import SKIP_ON_ERROR, LoaderRun
from batch_image_processing.utils.batch.run import pick_run, prefetch_after
from batch_image_processing.utils.batch.state import BatchSettings, StateStore
from batch_image_processing.utils.images import run_batch
from batch_image_processing.utils.images.decode import DecodeError, decode_image
from batch_image_processing.utils.images.prefetch import Prefetcher
from batch_image_processing.utils.images.run_batch import RunBatch
from batch_image_processing.utils.images.tensors import to_tensors
from PIL import Image

LOCK = threading.RLock()
CPU = ("cpu", torch.float32)


pytestmark = pytest.mark.usefixtures("pool_writes_every_image")


def test_a_slice_still_being_written_is_not_handed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img.write_png(tmp_path / "a.png", 6, 4, seed=1)
    img.write_png(tmp_path / "b.png", 6, 4, seed=2)
    a, b = decode_image(str(tmp_path / "a.png")), decode_image(str(tmp_path / "b.png"))
    started, release = threading.Event(), threading.Event()
    inner = run_batch.write_slice

    def slow(image: np.ndarray, mask: np.ndarray, decoded: object) -> None:
        if decoded is a:
            started.set()
            release.wait(5)
        inner(image, mask, decoded)

    monkeypatch.setattr(run_batch, "write_slice", slow)
    batch = RunBatch([0, 1])
    writer = threading.Thread(target=batch.fill, args=(0, a))
    writer.start()
    assert started.wait(5)
    try:
        assert batch.tensors([(0, a), (1, b)]) is None, "a half-written slice was handed out"
    finally:
        release.set()
        writer.join()
    written = batch.tensors([(0, a), (1, b)])
    assert written is not None
    assert torch.equal(written[0][0], to_tensors(a, *CPU)[0][0])
    assert torch.equal(written[0][1], to_tensors(b, *CPU)[0][0])


def test_two_decodes_of_one_file_racing_for_its_slice_leave_it_to_one(tmp_path: Path) -> None:
    for seed in range(30):
        img.write_png(tmp_path / "a.png", 6, 4, seed=seed)
        first = decode_image(str(tmp_path / "a.png"))
        img.write_png(tmp_path / "a.png", 6, 4, seed=seed + 1000)
        second = decode_image(str(tmp_path / "a.png"))
        batch = RunBatch([5])
        results: dict[int, bool] = {}
        threads = [threading.Thread(target=lambda n=n, d=d, b=batch, r=results: r.__setitem__(n, b.fill(5, d)))
                   for n, d in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [False, True], results
        winner, loser = (first, second) if results[0] else (second, first)
        assert batch.tensors([(5, loser)]) is None
        got = batch.tensors([(5, winner)])
        assert got is not None and torch.equal(got[0], to_tensors(winner, *CPU)[0])


# ----- a random walk: K changing per run, files replaced / resized / unreadable ahead ------------------------
SIZES = [(6, 4), (4, 6)]


def write(path: Path, rng: random.Random) -> None:
    """New content for path (another size, alpha or unreadable, by chance), under a new inode; the old
    inode is kept alive in a graveyard: a later version can never reuse its number, so the signature
    always tells versions apart (the racy window is off here)."""
    if path.exists():
        graveyard = path.parent.parent / "graveyard"
        graveyard.mkdir(exist_ok=True)
        os.link(path, graveyard / f"{path.name}.{len(list(graveyard.iterdir()))}")
    w, h = rng.choice(SIZES)
    kind = rng.random()
    fresh = path.with_name("." + path.name)
    if kind < 0.15:
        img.write_text_as_image(fresh)
    elif kind < 0.4:
        arr = np.random.default_rng(rng.randrange(10**6)).integers(0, 256, (h, w, 4), dtype=np.uint8)
        Image.fromarray(arr, "RGBA").save(fresh, format="PNG")
    else:
        img.write_png(fresh, w, h, seed=rng.randrange(10**6))
    os.replace(fresh, path)


def fresh_tensors(path: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    try:
        return to_tensors(decode_image(path), *CPU)
    except DecodeError:
        return None


@pytest.mark.parametrize("seed", range(40))
def test_random_k_and_files_changing_ahead_never_give_a_run_stale_or_foreign_pixels(tmp_path: Path,
                                                                                      seed: int) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "images"
    folder.mkdir()
    count = 14
    for i in range(count):
        write(folder / f"img{i:02d}.png", rng)
    settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)", "wf")
    batch = Batch.new_pass(settings, 0, StateStore(str(tmp_path / "state")))
    pool = Prefetcher()
    seen: list[int] = []
    k = rng.randint(2, 4)
    while batch.state.next_index < count:
        loaded = pick_run(batch, k, SKIP_ON_ERROR, pool, "Convert to sRGB", LOCK, into_batch=True)
        if loaded is None:
            break
        k = rng.randint(2, 4)  # the next run's K: the one prefetched for below, or not (a change of K)
        prefetch_after(batch, loaded, k, pool, ("cpu", torch.float32, "Convert to sRGB"))
        image, mask = loaded.tensors(*CPU)
        members = loaded.members
        assert image.shape[0] == len(members) == mask.shape[0]
        for n, m in enumerate(members):
            want = fresh_tensors(batch.full_path(m.index))
            assert want is not None, f"seed {seed}: unreadable img{m.index:02d} in a run"
            assert torch.equal(image[n], want[0][0]) and torch.equal(mask[n], want[1][0]), \
                f"seed {seed}: run {[x.index for x in members]} slot {n} holds other pixels"
        seen += [m.index for m in members] + [u[0] for u in loaded.unreadable]
        LoaderRun.of(batch, loaded, SKIP_ON_ERROR).record_finished(None)
        time.sleep(rng.choice([0, 0, 0.002, 0.01]))  # the pool gets more or less of the next run written
        for _ in range(rng.randint(0, 3)):  # files ahead of the position change, some already written ahead
            ahead = rng.randrange(batch.state.next_index, count) if batch.state.next_index < count else None
            if ahead is not None:
                write(folder / f"img{ahead:02d}.png", rng)
        if rng.random() < 0.3:  # the held image too (if any)
            held = batch.held_image
            if held is not None:
                write(Path(held.path), rng)
    assert sorted(set(seen)) == sorted(seen), f"seed {seed}: an image twice: {seen}"
    assert set(seen) <= set(range(count))
