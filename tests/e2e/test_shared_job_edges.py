"""A shared job at its edges, on real servers (issue 17): it never says "done" with an image
missing, never writes a result twice, and never hangs.

Two servers of one install with a 3 s lease, Batch Image Saver writing into one folder (a
result written twice shows as img02_1.png). One image can be made the slow one
(BIPTestSleepOn), to freeze or kill the server that holds it at a known moment.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import imagefiles as img
import pytest
from harness import ComfyClient, ComfyServer, shared_servers
from helpers import batch_status
from workflows import loader_node, saver_node

LEASE_S = 3.0
ROUTE = "/batch_image_processing"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ComfyServer]]:
    with shared_servers(tmp_path_factory.mktemp("pair"), 2, LEASE_S) as servers:
        yield servers


@pytest.fixture
def clients(pair: list[ComfyServer]) -> Iterator[list[ComfyClient]]:
    for server in pair:
        if server.process is None:
            server.start()
    clients = [ComfyClient(s.url) for s in pair]
    yield clients
    for server, c in zip(pair, clients, strict=True):
        if server.process is not None:
            os.killpg(server.process.pid, signal.SIGCONT)  # a test that failed while one was frozen
            c.request("POST", "/queue", {"clear": True})
            c.request("POST", f"{ROUTE}/stop", {"all": True})
            c.interrupt()
    for server, c in zip(pair, clients, strict=True):
        if server.process is not None:
            c.wait_idle(timeout=60, quiet_for=0.3)


def make_folder(root: Path, name: str, count: int, prefix: str = "img", size: tuple[int, int] = (8, 8)) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(count):
        img.write_solid(folder / f"{prefix}{i:02d}.png", (i * 9 % 256, 40, 0), size=size)
    return folder


def workflow(folder: Path, out: Path, job: str, seconds: float = 0.1, slow: str = "", slow_seconds: float = 0.0,
             **loader: object) -> dict:
    """loader (shared_job) -> a wait (longer on the image whose name contains slow) -> Batch Image Saver."""
    return {
        "1": loader_node(str(folder), shared_job=job, **loader),
        "2": {"class_type": "BIPTestSleepOn", "inputs": {"images": ["1", 0], "name": ["1", 2], "seconds": seconds,
                                                         "slow_if_contains": slow, "slow_seconds": slow_seconds}},
        "3": saver_node(["2", 0], str(out)),
    }


def results(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*.png")) if out.is_dir() else []


def expected(count: int, prefix: str = "img") -> list[str]:
    return [f"{prefix}{i:02d}.png" for i in range(count)]


def row(client: ComfyClient, folder: Path) -> dict:
    rows = batch_status(client, folder)
    return rows[0] if rows else {"current_file": "", "state": "", "text": ""}


def holder_of(clients: list[ComfyClient], folder: Path, name: str) -> int:
    """Index of the server that processes name now (waits for one)."""
    found: list[int] = []

    def look() -> bool:
        found[:] = [i for i, c in enumerate(clients) if row(c, folder).get("current_file") == name]
        return bool(found)

    clients[0].wait_for(look, timeout=60, what=f"a server processing {name}")
    return found[0]


def error_of(client: ComfyClient, prompt_id: str) -> str:
    client.wait_for(lambda: prompt_id in client.history(), timeout=60, what="the refused prompt in history")
    messages = client.history()[prompt_id]["status"]["messages"]
    return next(d["exception_message"] for ev, d in messages if ev == "execution_error")


def test_killing_the_server_that_holds_the_last_image_never_ends_the_other_as_done(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 1: the other server waits for the last image ("waiting for 1 image on another
    server") instead of ending its chain, and takes it over when the dead server's lease runs out."""
    folder, out = make_folder(pair[0].input_dir, test_name, 6), tmp_path / "out"
    prompt = workflow(folder, out, "tail", seconds=0.2, slow="img05", slow_seconds=5.0)
    for c in clients:
        c.queue_prompt(prompt)
    victim = holder_of(clients, folder, "img05.png")
    survivor = clients[1 - victim]
    survivor.wait_for(lambda: "waiting for 1 image on another server" in row(survivor, folder)["text"],
                      timeout=30, what="the survivor waiting for the last image")
    assert row(survivor, folder)["state"] == "running"
    pair[victim].stop(kill=True)  # kill -9 while it holds the last image
    survivor.wait_idle(timeout=60, quiet_for=1.0)
    assert results(out) == expected(6), "every image once, the last one too"
    final = row(survivor, folder)
    assert final["state"] == "complete" and final["text"].startswith("6 / 6 shared"), final


def test_a_server_waiting_for_another_s_image_stops_at_once_on_stop(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """The wait for images held elsewhere never traps a server: Stop batch ends it at once."""
    folder, out = make_folder(pair[0].input_dir, test_name, 3), tmp_path / "out"
    prompt = workflow(folder, out, "wait-stop", seconds=0.1, slow="img02", slow_seconds=4.0)
    for c in clients:
        c.queue_prompt(prompt)
    holder = holder_of(clients, folder, "img02.png")
    waiter = clients[1 - holder]
    waiter.wait_for(lambda: "waiting for 1 image" in row(waiter, folder)["text"], timeout=30, what="waiting")
    assert waiter.request("POST", f"{ROUTE}/stop", {"node_id": "1"})[0] == 200
    waiter.wait_idle(timeout=3, quiet_for=0.3)
    stopped = row(waiter, folder)
    assert stopped["state"] == "stopped" and "Stop batch" in stopped["stop_reason"], stopped
    clients[holder].wait_idle(timeout=30)
    assert results(out) == expected(3)
    assert row(clients[holder], folder)["state"] == "complete"


def test_a_server_frozen_past_its_lease_does_not_save_the_image_taken_over(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Cases 2 and 7: SIGSTOP inside an image for longer than the lease, the other server redoes it,
    SIGCONT: the frozen server's saver finds its claim lost and writes nothing; no count passes
    the total."""
    folder, out = make_folder(pair[0].input_dir, test_name, 6), tmp_path / "out"
    prompt = workflow(folder, out, "freeze", seconds=0.2, slow="img02", slow_seconds=2.0)
    for c in clients:
        c.queue_prompt(prompt)
    frozen = holder_of(clients, folder, "img02.png")
    other, process = clients[1 - frozen], pair[frozen].process
    assert process is not None
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        other.wait_for(lambda: "img02.png" in results(out) and row(other, folder)["state"] == "complete",
                       timeout=60, what="the other server finishing the pass, the frozen server's image included")
    finally:
        os.killpg(process.pid, signal.SIGCONT)
    clients[frozen].wait_idle(timeout=60, quiet_for=1.0)
    assert results(out) == expected(6), "the frozen server wrote its result although it had lost the claim"
    assert "not saving the result of img02.png" in pair[frozen].log_text()
    for c in clients:
        shared = row(c, folder)
        assert shared["shared"]["done"] == 6 and shared["text"].startswith("6 / 6 shared"), shared
    assert row(clients[frozen], folder)["state"] == "complete"


def test_one_job_name_on_two_folders_is_refused_naming_both(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 3: same shared_job and shared_job_folder, another folder (other names; the same names
    with other sizes): the second server is refused, the first does its whole folder."""
    jobs = tmp_path / "jobs"
    first = make_folder(pair[0].input_dir, f"{test_name}_a", 6)
    other_names = make_folder(pair[0].input_dir, f"{test_name}_b", 4, prefix="other")
    same_names = make_folder(pair[0].input_dir, f"{test_name}_c", 6, size=(16, 16))
    clients[0].queue_prompt(workflow(first, tmp_path / "a", "two-folders", seconds=0.3, shared_job_folder=str(jobs)))
    clients[0].wait_for(lambda: row(clients[0], first)["state"] == "running", what="the first folder running")
    for second in (other_names, same_names):
        prompt_id = clients[1].queue_prompt(workflow(second, tmp_path / second.name, "two-folders",
                                                     shared_job_folder=str(jobs)))
        message = error_of(clients[1], prompt_id)
        assert str(first) in message and str(second) in message and "another folder" in message, message
        assert results(tmp_path / second.name) == []
    clients[0].wait_idle(timeout=60)
    assert results(tmp_path / "a") == expected(6)
    assert row(clients[0], first)["state"] == "complete"


def test_one_job_name_with_another_sort_order_is_refused_naming_both(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 8: the same folder and job name with sort_by Modified time on the second server."""
    folder, out = make_folder(pair[0].input_dir, test_name, 6), tmp_path / "out"
    clients[0].queue_prompt(workflow(folder, out, "sorts", seconds=0.3))
    clients[0].wait_for(lambda: row(clients[0], folder)["state"] == "running", what="server 0 running")
    prompt_id = clients[1].queue_prompt(workflow(folder, out, "sorts", sort_by="Modified time"))
    message = error_of(clients[1], prompt_id)
    assert "'Name (natural)'" in message and "'Modified time'" in message and "other settings" in message, message
    clients[0].wait_idle(timeout=60)
    assert results(out) == expected(6), "each image once, by the first server only"


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_a_claims_folder_turning_read_only_stops_cleanly_and_queue_resumes(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 4: the claims folder (a tmpfs) is remounted read-only mid-batch: both chains stop with
    the folder and the error named (no hang); read-write again, Queue finishes every image once."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(jobs)):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN): no read-only claims folder to test with")
    try:
        folder, out = make_folder(pair[0].input_dir, test_name, 10), tmp_path / "out"
        prompt = workflow(folder, out, "read-only", seconds=0.4, shared_job_folder=str(jobs))
        for c in clients:
            c.queue_prompt(prompt)
        clients[0].wait_for(lambda: row(clients[0], folder).get("shared", {}).get("done", 0) >= 2,
                            timeout=60, what="two images done")
        assert _mount("-o", "remount,ro", str(jobs))
        for c in clients:
            c.wait_idle(timeout=30, quiet_for=1.0)  # stops within a lease, never "running" forever
        for c in clients:
            stopped = row(c, folder)
            assert stopped["state"] == "stopped", stopped
            assert str(jobs) in stopped["last_error"] and "Read-only file system" in stopped["last_error"], stopped
        assert _mount("-o", "remount,rw", str(jobs))
        for c in clients:
            c.queue_prompt(prompt)  # no restart needed
        for c in clients:
            c.wait_idle(timeout=90, quiet_for=1.0)
        assert results(out) == expected(10)
        assert all(row(c, folder)["state"] == "complete" for c in clients)
    finally:
        subprocess.run(["umount", "-l", str(jobs)], capture_output=True)


def test_clearing_the_history_at_random_moments_neither_stops_nor_redoes_a_batch(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 5: POST /history {"clear": true} (the queue panel's Clear history) all through a plain
    batch, and the history wiped right after every third image was written to it: the batch
    completes, every image counted and saved once."""
    folder, out = make_folder(pair[0].input_dir, test_name, 12), tmp_path / "out"
    client, stop = clients[0], threading.Event()
    prompt = workflow(folder, out, "", seconds=0.15)
    for n in (0, 3, 6, 9):
        prompt[f"9{n}"] = {"class_type": "BIPTestClearHistoryAfter",
                           "inputs": {"images": ["2", 0], "name": ["1", 2], "clear_if_contains": f"img{n:02d}"}}
    rng = random.Random(17)

    def clear_now_and_then() -> None:
        while not stop.wait(rng.uniform(0.01, 0.2)):
            client.request("POST", "/history", {"clear": True})

    clearer = threading.Thread(target=clear_now_and_then, daemon=True)
    client.queue_prompt(prompt)
    clearer.start()
    try:
        client.wait_idle(timeout=90, quiet_for=1.0)
    finally:
        stop.set()
        clearer.join()
    final = row(client, folder)
    assert final["state"] == "complete" and final["done"] == 12, final
    assert results(out) == expected(12)


def test_a_reset_on_one_server_reads_as_such_on_the_others(
    pair: list[ComfyServer], clients: list[ComfyClient], tmp_path: Path, test_name: str
) -> None:
    """Case 6: after a finished pass, and in the middle of one."""
    folder, out = make_folder(pair[0].input_dir, test_name, 8), tmp_path / "out"
    for c in clients:
        c.queue_prompt(workflow(folder, out, "reset-elsewhere", seconds=0.05))
    for c in clients:
        c.wait_idle(timeout=60)
    assert row(clients[1], folder)["text"].startswith("8 / 8 shared")
    assert clients[0].request("POST", f"{ROUTE}/reset", {"node_id": "1"})[0] == 200
    assert "reset on another server" in row(clients[1], folder)["text"], row(clients[1], folder)
    # In the middle of a pass: the other server's chain stops, saying why.
    for c in clients:
        c.queue_prompt(workflow(folder, tmp_path / "second", "reset-elsewhere", seconds=0.4))
    clients[1].wait_for(lambda: row(clients[1], folder).get("shared", {}).get("done", 0) >= 2, timeout=60,
                        what="two images of the second pass")
    assert clients[0].request("POST", f"{ROUTE}/reset", {"node_id": "1"})[0] == 200
    clients[1].wait_idle(timeout=30, quiet_for=1.0)
    stopped = row(clients[1], folder)
    assert stopped["state"] == "stopped" and "reset on another server" in stopped["text"], stopped
    second = results(tmp_path / "second")
    assert len(second) == len(set(second)) and not any("_1." in n for n in second), second
