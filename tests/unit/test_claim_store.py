"""The shared job's claim store, on real folders: several SharedJob objects play several servers
(each has its own owner id, as a server would); the stress tests add threads and processes."""

from __future__ import annotations

import errno
import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import claim_workers
import pytest
from batch_image_processing.utils.file_listing import FileMatcher, ImageEntry, list_images
from batch_image_processing.utils.shared_job import files as shared_files
from batch_image_processing.utils.shared_job.claim_store import ClaimStore, JobGoneError
from batch_image_processing.utils.shared_job.job import JobStoppedError, SharedJob
from batch_image_processing.utils.shared_job.job_folder import (
    FOLDER_SETTING,
    JOBS_FOLDER,
    SharedFolderError,
    folder_problem,
    job_folder,
    job_id,
    lease_from_env,
)


def make_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img_{i}.png").write_bytes(b"x")


def lister(folder: Path, calls: list[int] | None = None):
    def make() -> list[ImageEntry]:
        if calls is not None:
            calls.append(1)
        return list_images(str(folder), FileMatcher("All Images"), False, "Name (natural)")
    return make


@pytest.fixture
def servers(tmp_path: Path) -> Iterator:
    """servers(n, lease_s) -> n SharedJob on one folder of 6 images, pass opened; all closed afterwards."""
    made: list[SharedJob] = []
    images = tmp_path / "images"
    make_images(images, 6)
    folder = job_folder(str(images), job_id("job"))

    def start(n: int = 2, lease_s: float = 5.0, **kwargs: object) -> list[SharedJob]:
        jobs = [SharedJob(folder, lease_s=lease_s, **kwargs) for _ in range(n)]  # type: ignore[arg-type]
        for job in jobs:
            job.open_pass(lister(images))
        made.extend(jobs)
        return jobs

    yield start
    for job in made:
        job.close()


def test_job_id_is_the_name_alone_folder_and_settings_are_checked_by_the_pass() -> None:
    base = job_id("night run")
    assert base == job_id(" night run ")
    assert base.startswith("night_run-") and os.sep not in base
    assert len({base, job_id("other"), job_id("night_run"), job_id("night/run")}) == 4, "names that slug alike"


def test_job_folder_is_hidden_in_the_image_folder_or_where_named(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 2)
    folder = job_folder(str(images), "j-1")
    assert folder == os.path.join(str(images), JOBS_FOLDER, "j-1")
    job = SharedJob(folder, lease_s=5)
    job.open_pass(lister(images))
    job.close()
    assert [e.rel_path for e in lister(images)()] == ["img_0.png", "img_1.png"], "job files must not be listed"
    assert job_folder(str(images), "j-1", str(tmp_path / "claims")) == os.path.join(str(tmp_path / "claims"), "j-1")


def test_lease_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_IMAGE_LEASE_S", "2.5")
    assert lease_from_env() == 2.5
    monkeypatch.setenv("BATCH_IMAGE_LEASE_S", "soon")
    assert lease_from_env() == 60.0


def test_first_server_lists_the_folder_and_later_joiners_read_its_list(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 3)
    folder = job_folder(str(images), "j")
    calls: list[int] = []
    a, b = SharedJob(folder, lease_s=5), SharedJob(folder, lease_s=5)
    first = a.open_pass(lister(images, calls))
    (images / "img_9.png").write_bytes(b"x")  # appears after the pass started: not in it
    second = b.open_pass(lister(images, calls))
    assert calls == [1]
    assert second.pass_id == first.pass_id and second.entries == first.entries and len(second.entries) == 3
    a.close()
    b.close()


def test_servers_starting_at_once_agree_on_one_pass(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 4)
    folder = job_folder(str(images), "race")
    jobs = [SharedJob(folder, lease_s=5) for _ in range(8)]
    barrier = threading.Barrier(len(jobs))

    def slow_listing() -> list[ImageEntry]:
        time.sleep(0.2)  # a big folder: every server that found no pass is listing at the same time
        return lister(images)()

    def open_one(job: SharedJob, new_pass: bool) -> str:
        barrier.wait()
        return job.open_pass(slow_listing, new_pass_if_complete=new_pass).pass_id

    with ThreadPoolExecutor(len(jobs)) as pool:
        first = set(pool.map(open_one, jobs, [False] * len(jobs)))
        assert len(first) == 1
        while (claim := jobs[0].claim_next()) is not None:
            jobs[0].complete(claim.index, "done")
        second = set(pool.map(open_one, jobs, [True] * len(jobs)))
    assert len(second) == 1 and second != first, "a complete pass must give way to exactly one new pass"
    assert sorted(n for n in os.listdir(folder) if n.startswith("pass-")) == [
        "pass-000001-" + first.pop().split("-")[1], "pass-000001.json",
        "pass-000002-" + second.pop().split("-")[1], "pass-000002.json"], "losers must remove their folders"
    for job in jobs:
        job.close()


def test_two_servers_take_each_image_once_in_order(servers) -> None:
    a, b = servers(2)
    taken = []
    for job in (a, b, a, b, a, b):
        claim = job.claim_next()
        assert claim is not None
        taken.append(claim.index)
    assert taken == [0, 1, 2, 3, 4, 5]
    assert a.claim_next() is None and b.claim_next() is None
    assert a.progress()["claimed"] == 6 and not a.is_complete()
    for i in range(6):
        assert (a if i % 2 == 0 else b).complete(i, "done")
    assert a.is_complete()
    assert a.progress() | {"servers": 0} == {"done": 6, "skipped": 0, "claimed": 0, "total": 6, "mine": 3,
                                             "pass_id": a.current_pass.pass_id, "servers": 0}


def test_an_unrenewed_claim_is_taken_over_after_its_lease(servers) -> None:
    a, b = servers(2, lease_s=0.4, auto_renew=False)
    claim = a.claim_next()
    assert claim is not None and claim.index == 0
    assert b.claim_next().index == 1  # 0 is held
    time.sleep(0.6)
    taken = b.claim_next()
    assert taken is not None and taken.index == 0, "an expired claim must be taken over"
    assert a.renew(0) == "lost"


def test_renewal_keeps_an_image_during_a_long_run(servers) -> None:
    a, b = servers(2, lease_s=0.3)  # renewed by the background thread every 0.1 s
    assert a.claim_next().index == 0
    deadline = time.time() + 1.2  # four leases
    while time.time() < deadline:
        claim = b.claim_next()
        assert claim is None or claim.index != 0, "a renewed claim was taken over"
        if claim is not None:
            b.complete(claim.index, "done")
        time.sleep(0.05)
    assert a.renew(0) == "ok"
    assert a.complete(0, "done") and a.is_complete()


def test_a_slow_owner_after_a_takeover_cannot_complete_twice(servers) -> None:
    a, b = servers(2, lease_s=0.3, auto_renew=False)
    assert a.claim_next().index == 0
    time.sleep(0.45)
    assert b.claim_next().index == 0
    assert b.complete(0, "done") is True
    assert a.renew(0) == "done_elsewhere"
    assert a.complete(0, "done") is False, "the image was recorded by the taker first"
    assert a.progress()["done"] == 1 and a.progress()["mine"] == 0 and b.progress()["mine"] == 1
    # The other way round: the slow owner finishes first and wins; the taker's result is the redo.
    assert a.claim_next().index == 1
    time.sleep(0.45)
    assert b.claim_next().index == 1
    assert a.complete(1, "done") is True
    assert b.renew(1) == "done_elsewhere" and b.complete(1, "done") is False
    assert a.claim_next().index == 2, "finished images are never claimed again"
    done = Path(a.current_pass.folder) / "done"
    assert sorted(os.listdir(done)) == ["0", "1"]
    assert json.loads((done / "0").read_text())["owner"] == b.owner


def test_a_killed_server_holds_its_image_for_a_lease_then_it_is_retaken(tmp_path: Path) -> None:
    images = tmp_path / "images"
    make_images(images, 2)
    folder = job_folder(str(images), "kill")
    job = SharedJob(folder, lease_s=0.6)
    job.open_pass(lister(images))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=claim_workers.hold_one, args=(folder, 0.6, queue))
    child.start()
    try:
        assert queue.get(timeout=30) == 0
        time.sleep(1.0)  # longer than the lease: the live child keeps renewing
        assert job.claim_next().index == 1, "a live server's image was taken"
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        killed_at = time.time()
        while (claim := job.claim_next()) is None:
            assert time.time() - killed_at < 3, "the dead server's image was never retaken"
            time.sleep(0.05)
        assert claim.index == 0
        assert time.time() - killed_at > 0.6 - 0.25, "retaken before the lease ran out"
    finally:
        if child.is_alive():
            child.kill()
        job.close()


def test_the_renewal_thread_reports_a_lost_claim(servers) -> None:
    lost: list[tuple[int, str]] = []
    (a,) = servers(1, lease_s=0.3, on_lost=lambda index, why: lost.append((index, why)))
    assert a.claim_next().index == 0
    time.sleep(0.5)
    assert lost == [], "a renewed claim was reported lost"
    # Another server took the image over (as after a network partition longer than the lease).
    (Path(a.current_pass.folder) / "claims" / "0.1").write_text(json.dumps({"kind": "claim", "owner": "x"}))
    time.sleep(0.3)
    assert lost == [(0, "lost")]
    assert a.participants() == [a.owner] and a.progress()["servers"] == 1


def test_a_finisher_that_died_before_closing_the_chain_still_counts_once(servers, monkeypatch) -> None:
    a, b, c = servers(3, lease_s=0.3, auto_renew=False)
    assert a.claim_next().index == 0
    assert b.progress()["claimed"] == 1 and c.progress()["claimed"] == 1  # both have looked: 0 is held
    monkeypatch.setattr(a._claims, "_close_chain", lambda index, gen: None)  # killed right after done/0
    assert a.complete(0, "done")
    time.sleep(0.45)  # a's claim on image 0 has expired: it must not look free
    assert c.progress() | {"servers": 0, "pass_id": ""} == {
        "done": 1, "skipped": 0, "claimed": 0, "total": 6, "mine": 0, "servers": 0, "pass_id": ""}
    assert b.claim_next().index == 1, "a finished image was taken again"
    assert json.loads((Path(a.current_pass.folder) / "claims" / "0.2").read_text())["kind"] == "done"


def test_release_hands_the_image_on_at_once(servers) -> None:
    a, b = servers(2)
    assert a.claim_next().index == 0
    assert a.release(0) is True and a.release(0) is False
    assert b.claim_next().index == 0
    assert a.claim_next().index == 1


def test_stop_all_is_seen_by_every_server_with_the_first_reason_and_file(servers) -> None:
    a, b = servers(2)
    assert a.claim_next().index == 0
    assert b.request_stop("node 4 (Upscale) failed: out of memory", "img_1.png") is True
    assert a.request_stop("later", "") is False, "the first stop request is the one everyone shows"
    for job in (a, b):
        with pytest.raises(JobStoppedError, match=r"out of memory \(img_1.png\)") as caught:
            job.claim_next()
        assert caught.value.record["by"] == b.owner and caught.value.record["file"] == "img_1.png"
    assert a.stop_request()["reason"] == "node 4 (Upscale) failed: out of memory"
    assert a.complete(0, "done"), "the image in progress still finishes"
    a.clear_stop()
    assert b.stop_request() is None and b.claim_next().index == 1, "Continue resumes where the batch stands"


def test_a_skipped_image_is_recorded_once_for_everyone(servers) -> None:
    a, b = servers(2, lease_s=0.3, auto_renew=False)
    assert a.claim_next().index == 0
    time.sleep(0.45)
    assert b.claim_next().index == 0
    assert b.complete(0, "skipped", "cannot identify image file") is True
    assert a.complete(0, "skipped", "cannot identify image file") is False
    for job in (a, b):
        assert job.skipped_files() == [{"outcome": "skipped", "reason": "cannot identify image file",
                                        "file": "img_0.png", "owner": b.owner,
                                        "at": job.skipped_files()[0]["at"]}]
        assert job.progress()["skipped"] == 1 and job.progress()["done"] == 0


def test_reset_forgets_the_shared_progress_for_every_server(servers) -> None:
    a, b = servers(2)
    old = a.current_pass.pass_id
    assert a.claim_next().index == 0 and a.complete(0, "done")
    assert b.claim_next().index == 1
    assert a.reset() is True
    assert b.renew(1) == "gone"
    with pytest.raises(JobGoneError):
        b.complete(1, "done")
    with pytest.raises(JobGoneError):
        b.claim_next()
    images = Path(a.folder).parent.parent
    fresh = b.open_pass(lister(images))
    assert fresh.pass_id != old and a.open_pass(lister(images)).pass_id == fresh.pass_id
    assert a.claim_next().index == 0 and a.progress()["done"] == 0
    assert not [n for n in os.listdir(Path(a.folder).parent) if ".reset-" in n], "reset left its folder behind"


def test_a_complete_pass_starts_a_new_one_only_when_asked(servers, tmp_path: Path) -> None:
    a, b = servers(2)
    first = a.current_pass
    while (claim := a.claim_next()) is not None:
        a.complete(claim.index, "done")
    images = tmp_path / "images"
    (images / "img_6.png").write_bytes(b"x")
    assert b.open_pass(lister(images)).pass_id == first.pass_id, "a continuation stays in its pass"
    assert b.claim_next() is None
    second = b.open_pass(lister(images), new_pass_if_complete=True)
    assert second.pass_id != first.pass_id and second.number == 2 and len(second.entries) == 7
    assert a.open_pass(lister(images), new_pass_if_complete=True).pass_id == second.pass_id, "joins, not a third"
    assert a.claim_next().index == 0 and b.progress()["claimed"] == 1


def test_continue_after_every_server_stopped_resumes_where_the_batch_stands(servers) -> None:
    a, b = servers(2)
    folder = a.folder
    for job in (a, b):
        claim = job.claim_next()
        job.complete(claim.index, "done")
    assert a.claim_next().index == 2 and a.release(2)
    a.close()
    b.close()
    c = SharedJob(folder, lease_s=5)
    c.open_pass(claim_workers.no_listing)
    assert [c.claim_next().index for _ in range(4)] == [2, 3, 4, 5]
    assert c.progress()["done"] == 2 and c.progress()["claimed"] == 4
    c.close()


def test_a_server_with_another_clock_judges_leases_on_the_file_servers_clock(servers, monkeypatch) -> None:
    a, b = servers(2, lease_s=1.0)
    assert a.claim_next().index == 0
    real_time = time.time
    skewed = lambda: real_time() + 3600  # noqa: E731  an hour ahead: every claim would look expired
    monkeypatch.setattr(time, "time", skewed)  # what b would read from its machine's clock
    b._clock.local_clock = skewed
    b._clock.beat()
    assert b.claim_next().index == 1, "a fresh claim was taken over because of the taker's clock"
    monkeypatch.setattr(time, "time", real_time)
    os.utime(os.path.join(a.current_pass.folder, "claims", "0.0"), (real_time() - 2, real_time() - 2))
    monkeypatch.setattr(time, "time", skewed)
    assert b.claim_next().index == 0, "a claim 2 s old on the file server's clock (lease 1 s) is expired"


@contextmanager
def read_only_folder(path: Path) -> Iterator[str]:
    """A folder that really refuses writes. As root, permission bits do not (root writes anyway):
    mount a read-only tmpfs there; otherwise chmod 0555."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield "chmod 0555"
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("running as root without the right to mount: no folder refuses writes here")
    try:
        yield "read-only tmpfs"
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_image_folder_without_a_named_job_folder_is_a_clear_error(tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "ro") as how:
        with pytest.raises(OSError):  # the folder really refuses writes
            (tmp_path / "ro" / "x").write_text("x")
        folder = job_folder(str(tmp_path / "ro"), "j")
        message = folder_problem(folder)
        assert message is not None and FOLDER_SETTING in message and "read-only" in message, how
        with pytest.raises(SharedFolderError, match=FOLDER_SETTING):
            SharedJob(folder, lease_s=5).open_pass(lambda: [ImageEntry("a.png", 0.0)])
        named = job_folder(str(tmp_path / "ro"), "j", str(tmp_path / "claims"))
        assert folder_problem(named) is None


def test_file_systems_without_hard_links_fall_back_to_exclusive_create(servers, monkeypatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    a, b = servers(2, lease_s=0.3, auto_renew=False)
    assert a.current_pass.pass_id == b.current_pass.pass_id
    assert a.claim_next().index == 0 and b.claim_next().index == 1
    time.sleep(0.45)
    assert b.claim_next().index == 0 and b.complete(0, "done") and not a.complete(0, "done")
    assert not a._pub.use_links and b.progress()["done"] == 1


def test_a_link_whose_reply_was_lost_still_counts_as_ours(tmp_path: Path, monkeypatch) -> None:
    """NFS: the link worked but its reply was lost; the retransmission answers EEXIST."""
    real_link = os.link

    def link_then_eexist(src: str, dst: str) -> None:
        real_link(src, dst)
        raise FileExistsError(errno.EEXIST, "File exists")

    publisher = shared_files.Publisher(str(tmp_path), "me")
    monkeypatch.setattr(os, "link", link_then_eexist)
    assert publisher.publish(str(tmp_path / "rec"), {"kind": "claim"}) is True
    monkeypatch.setattr(os, "link", real_link)
    assert publisher.publish(str(tmp_path / "rec"), {"kind": "claim"}) is False
    assert sorted(os.listdir(tmp_path)) == ["rec"], "temporary files left behind"


def test_claim_next_reads_only_from_the_cursor(tmp_path: Path, monkeypatch) -> None:
    """A joiner seeds from one done/ listing and reads no finished image's claims."""
    images = tmp_path / "images"
    make_images(images, 1)
    entries = [ImageEntry(f"{i}.png", 0.0) for i in range(800)]
    a = SharedJob(job_folder(str(images), "big"), lease_s=5)
    a.open_pass(lambda: entries)
    for _ in range(600):
        claim = a.claim_next()
        a.complete(claim.index, "done")
    b = SharedJob(a.folder, lease_s=5)
    b.open_pass(claim_workers.no_listing)
    reads = Counter()
    real_read = shared_files.read_record

    def counting(path: str):
        reads[path] += 1
        return real_read(path)

    monkeypatch.setattr("batch_image_processing.utils.shared_job.claim_store.read_record", counting)
    assert b.claim_next().index == 600
    assert sum(reads.values()) <= 2
    for _ in range(5):  # another server goes on meanwhile
        a.complete(a.claim_next().index, "done")
    reads.clear()
    assert b.progress() | {"servers": 0, "pass_id": ""} == {
        "done": 605, "skipped": 0, "claimed": 1, "total": 800, "mine": 0, "servers": 0, "pass_id": ""}
    assert sum(reads.values()) <= 5 * 2 + 2, "progress must read only what changed since the last look"
    assert isinstance(b._claims, ClaimStore) and b._claims._cursor == 600
    a.close()
    b.close()


def _run_stress(tmp_path: Path, images: int, lease_s: float, processes: int, threads: int, seconds: float,
                pause_every: int, pause_s: float, budget_s: float) -> list[dict]:
    folder = job_folder(str(tmp_path), "stress")
    entries = [ImageEntry(f"{i}.png", 0.0) for i in range(images)]
    opener = SharedJob(folder, lease_s=lease_s)
    opener.open_pass(lambda: entries)
    logs = tmp_path / "logs"
    logs.mkdir()
    deadline = time.time() + budget_s + 10  # + the start of the spawned processes
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=claim_workers.run_process, args=(folder, lease_s, str(logs), threads, seconds,
                                                                pause_every, pause_s, deadline, barrier))
             for _ in range(processes)]
    for p in procs:
        p.start()
    claim_workers.run_process(folder, lease_s, str(logs), threads, seconds, pause_every, pause_s, deadline, barrier)
    for p in procs:
        p.join(timeout=budget_s + 30)
        assert p.exitcode == 0
    assert opener.is_complete(), "the batch did not finish within its time budget"
    done = Path(opener.current_pass.folder) / "done"
    assert sorted(int(n) for n in os.listdir(done)) == list(range(images))
    opener.close()
    rows = [json.loads(line) for f in logs.iterdir() for line in f.read_text().splitlines()]
    wins = Counter(r["index"] for r in rows if r["won"])
    assert wins == Counter(range(images)), "every image is recorded exactly once, by one of its runners"
    return rows


def test_stress_threads_and_processes_claim_each_image_exactly_once(tmp_path: Path) -> None:
    rows = _run_stress(tmp_path, images=400, lease_s=5.0, processes=2, threads=3, seconds=0.0, pause_every=0,
                       pause_s=0, budget_s=20)
    runs = Counter(r["index"] for r in rows)
    assert max(runs.values()) == 1, "an image ran twice although no server stalled"
    assert len({r["owner"] for r in rows}) >= 6, "not every worker took part"


def test_stress_with_takeovers_redoes_only_images_of_stalled_holders(tmp_path: Path) -> None:
    rows = _run_stress(tmp_path, images=150, lease_s=0.3, processes=2, threads=3, seconds=0.002, pause_every=7,
                       pause_s=0.5, budget_s=25)
    by_index: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_index[r["index"]].append(r)
    redone = {i: runs for i, runs in by_index.items() if len(runs) > 1}
    assert redone, "no takeover happened: the test did not test takeovers"
    for runs in redone.values():
        runs.sort(key=lambda r: r["start"])
        for earlier, later in itertools.pairwise(runs):
            if later["start"] < earlier["end"]:  # ran at the same time: the earlier one must have stalled
                assert earlier["paused"] or earlier["renew"] != "ok", ("taken from a live holder", earlier, later)
    stalled = sum(r["paused"] or r["renew"] != "ok" for r in rows)
    assert len(rows) - len(by_index) <= stalled, "more redos than stalled holders"
