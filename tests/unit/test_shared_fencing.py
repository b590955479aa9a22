"""Fencing, pending done records, counts and the pass's origin (issue 17), on real folders:
several SharedJob objects play several servers, renewing by hand (auto_renew=False) so a test
decides exactly when a holder looks frozen."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_image_processing.utils.file_listing import FileMatcher, ImageEntry, list_images
from batch_image_processing.utils.saving.safe_write import ADD_NUMBER, WriteFencedError, write_atomically
from batch_image_processing.utils.shared_job.job import ClaimsFolderError, SharedFolderError, SharedJob
from batch_image_processing.utils.shared_job.job_folder import job_folder, job_id

SETTINGS = {"filter_preset": "All Images", "custom_pattern": "", "include_subfolders": False,
            "sort_by": "Name (natural)"}
LEASE_S = 0.3


def make_images(folder: Path, count: int, size: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img_{i}.png").write_bytes(b"x" * size)


def lister(folder: Path):
    def make() -> list[ImageEntry]:
        return list_images(str(folder), FileMatcher("All Images"), False, "Name (natural)")
    return make


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    make_images(folder, 6)
    return folder


@pytest.fixture
def servers(images: Path) -> Iterator:
    made: list[SharedJob] = []
    folder = job_folder(str(images), job_id("job"))

    def start(n: int = 2) -> list[SharedJob]:
        jobs = [SharedJob(folder, lease_s=LEASE_S, auto_renew=False, name="job") for _ in range(n)]
        for job in jobs:
            job.open_pass(lister(images), directory=str(images), settings=SETTINGS)
        made.extend(jobs)
        return jobs

    yield start
    for job in made:
        job.close()


def test_the_fence_passes_for_the_holder_and_fails_after_a_takeover(servers) -> None:
    a, b = servers(2)
    assert a.claim_next().index == 0
    assert a.fence(0) == "ok"
    time.sleep(LEASE_S * 1.5)  # a is frozen past its lease
    assert b.claim_next().index == 0, "the expired claim is taken over"
    assert a.fence(0) == "lost", "the frozen holder must not write"
    assert a.complete(0, "done") is False, "a fenced holder records nothing (its claim is dropped)"
    assert b.fence(0) == "ok" and b.complete(0, "done") is True
    assert a.progress()["done"] == 1 and b.progress()["done"] == 1


def test_a_second_saver_of_a_recorded_image_may_still_write(servers) -> None:
    (a,) = servers(1)
    assert a.claim_next().index == 0
    assert a.complete(0, "done") is True
    assert a.fence(0) == "ok", "recorded by this server: its other saver writes too"
    assert a.complete(0, "done") is True, "recording twice is one record"
    assert a.progress()["done"] == 1


def test_a_holder_s_fence_and_a_taker_race_for_one_generation_and_one_wins(servers) -> None:
    a, b = servers(2)
    assert a.claim_next().index == 0
    time.sleep(LEASE_S * 1.5)
    real_publish = b._claims._pub.publish
    fences: list[str] = []

    def holder_wakes_first(path: str, record: dict) -> bool:
        if path.endswith(os.path.join("claims", "0.1")):
            fences.append(a.fence(0))  # the holder wakes and fences between b's look and b's publish
        return real_publish(path, record)

    b._claims._pub.publish = holder_wakes_first
    claim = b.claim_next()
    b._claims._pub.publish = real_publish
    assert fences == ["ok"]
    assert claim is None or claim.index != 0, "taken while its holder was writing"
    assert a.complete(0, "done") is True, "the holder's result is the one recorded"
    assert b.progress()["done"] == 1


def test_a_taker_hands_the_image_back_when_the_holder_renewed_meanwhile(servers) -> None:
    a, b, c = servers(3)
    assert a.claim_next().index == 0
    time.sleep(LEASE_S * 1.5)
    real_publish = b._claims._pub.publish

    def holder_renews_late(path: str, record: dict) -> bool:
        done = real_publish(path, record)
        if path.endswith(os.path.join("claims", "0.1")):
            a.renew(0)  # renewed after b published, before b re-read the lease
        return done

    b._claims._pub.publish = holder_renews_late
    b_claim = b.claim_next()
    assert b_claim is None or b_claim.index != 0, "the holder was alive: not run beside it"
    assert a.fence(0) == "lost", "the next generation exists: the holder may not write"
    claim = c.claim_next()
    assert claim is not None and claim.index == 0, "the image given back is taken again, once"
    assert c.complete(0, "done") and c.progress()["done"] == 1


def test_a_redo_that_completes_late_is_not_counted_twice(servers) -> None:
    a, b = servers(2)
    assert a.claim_next().index == 0
    time.sleep(LEASE_S * 1.5)
    assert b.claim_next().index == 0 and b.complete(0, "done")
    a._claims._seed()  # a re-lists done/ (every RESEED_AFTER surprises): its cursor passes image 0
    assert a.progress()["done"] == 1
    assert a.complete(0, "done") is False, "a did not ask its fence (a workflow without Batch Image Saver)"
    assert a.progress()["done"] == 1 and a.progress()["done"] <= a.progress()["total"]


def test_a_done_record_that_cannot_be_written_stays_pending_until_it_can(servers, monkeypatch) -> None:
    (a,) = servers(1)
    assert a.claim_next().index == 0
    real_publish = a._claims._pub.publish

    def read_only(path: str, record: dict) -> bool:
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(a._claims._pub, "publish", read_only)
    with pytest.raises(ClaimsFolderError) as failed:
        a.complete(0, "done")
    assert a.folder in str(failed.value) and "Read-only file system" in str(failed.value)
    assert a._claims.pending() == [0] and 0 in a._claims.held(), "kept, and still renewed"
    assert a.release(0) is False, "a saved result is never given back"
    monkeypatch.setattr(a._claims._pub, "publish", real_publish)
    assert a.claim_next().index == 1, "the next claim writes the pending record first"
    assert a._claims.pending() == [] and a.progress()["done"] == 1


def test_the_renewal_thread_keeps_a_failing_folder_for_the_next_claim(images: Path, monkeypatch) -> None:
    job = SharedJob(job_folder(str(images), job_id("renew")), lease_s=LEASE_S, name="renew")
    try:
        job.open_pass(lister(images))
        assert job.claim_next().index == 0

        def fail(*args: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(os, "utime", fail)
        deadline = time.time() + 5
        while job.failure is None and time.time() < deadline:
            time.sleep(0.02)
        monkeypatch.undo()
        with pytest.raises(ClaimsFolderError, match="Read-only file system"):
            job.claim_next()
        job.open_pass(lister(images))  # a press of Queue: the folder works again
        assert job.failure is None and job.claim_next().index == 1
    finally:
        job.close()


def test_a_pass_refuses_another_folder_or_other_settings_naming_both(servers, images: Path, tmp_path: Path) -> None:
    servers(1)
    folder = job_folder(str(images), job_id("job"))
    other = tmp_path / "other"
    make_images(other, 6, size=5)  # the same names, other files
    moved = tmp_path / "mounted-elsewhere"
    os.symlink(images, moved)
    join = SharedJob(folder, lease_s=LEASE_S, auto_renew=False, name="job")
    try:
        with pytest.raises(SharedFolderError) as refused:
            join.open_pass(lister(other), directory=str(other), settings=SETTINGS)
        assert str(images) in str(refused.value) and str(other) in str(refused.value)
        assert "another folder" in str(refused.value)
        with pytest.raises(SharedFolderError, match=r"other settings.*'Modified time'"):
            join.open_pass(lister(images), directory=str(images), settings={**SETTINGS, "sort_by": "Modified time"})
        joined = join.open_pass(lister(moved), directory=str(moved), settings=SETTINGS)
        assert len(joined.entries) == 6, "the same folder under another path joins"
    finally:
        join.close()


def test_the_fence_is_asked_after_the_encode_and_a_no_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "img.png"
    calls: list[str] = []

    def encode(fh: object) -> None:
        calls.append("encode")
        fh.write(b"data")  # type: ignore[attr-defined]

    def fence() -> bool:
        calls.append("fence")
        return False

    with pytest.raises(WriteFencedError):
        write_atomically(str(target), encode, ADD_NUMBER, (), fence)
    assert calls == ["encode", "fence"]
    assert os.listdir(target.parent) == [], "nothing written, no temporary file left"
    assert write_atomically(str(target), encode, ADD_NUMBER, (), lambda: True) == (str(target), True)


def test_the_fence_costs_well_under_a_millisecond(servers) -> None:
    (a,) = servers(1)
    assert a.claim_next().index == 0
    started = time.perf_counter()
    for _ in range(200):
        assert a.fence(0) == "ok"
    per_call_ms = (time.perf_counter() - started) / 200 * 1000
    assert per_call_ms < 5, f"{per_call_ms:.2f} ms per fence"


def test_a_prompt_s_outcome_outlives_a_cleared_history(monkeypatch) -> None:
    from collections import namedtuple

    from batch_image_processing.utils.comfy import bridge

    class Queue:  # the parts of ComfyUI's PromptQueue that task_done and get_history touch
        def __init__(self) -> None:
            self.currently_running = {3: (1, "p1", {}, {}, [])}
            self.history: dict = {}

        def task_done(self, item_id, history_result, status, process_item=None):
            prompt = self.currently_running.pop(item_id)
            self.history[prompt[1]] = {"status": status._asdict()}

        def get_history(self, prompt_id=None, map_function=None):
            return {k: map_function(v) for k, v in self.history.items() if k == prompt_id}

    queue = Queue()
    monkeypatch.setattr(bridge, "_queue", lambda: queue)
    assert bridge.hook_task_done() and bridge.hook_task_done(), "hooked once, asked twice"
    assert bridge.finished_status("p1") is bridge.NOT_FINISHED
    queue.task_done(3, {}, namedtuple("Status", "status_str completed messages")("success", True, []))
    assert bridge.finished_status("p1")["status_str"] == "success"
    queue.history.clear()  # Clear history
    assert bridge.finished_status("p1")["status_str"] == "success", "finished, not vanished"
    assert bridge.finished_status("p2") is bridge.NOT_FINISHED
