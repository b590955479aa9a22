"""Several ComfyUI servers work through one folder together (loader input shared_job).

Three real servers from one install (one base directory, one port each, as with one server per
GPU), and two installs that share nothing but the image folder, seen under different paths.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator
from pathlib import Path

import imagefiles as img
import pytest
from harness import ComfyClient, ComfyServer, shared_servers
from helpers import batch_status, saved_names
from workflows import loader_to_saveimage

LEASE_S = 3.0  # BATCH_IMAGE_LEASE_S for these servers: a killed server's image is retaken after 3 s
ROUTE = "/batch_image_processing"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ComfyServer]]:
    """Three servers of one install: one base directory (input, output, user folders), three ports."""
    with shared_servers(tmp_path_factory.mktemp("farm"), 3, LEASE_S) as servers:
        yield servers


@pytest.fixture
def clients(farm: list[ComfyServer]) -> Iterator[list[ComfyClient]]:
    clients = [ComfyClient(s.url) for s in farm]
    yield clients
    for c in clients:
        if c.request("GET", "/system_stats")[0] == 200:
            c.request("POST", "/queue", {"clear": True})
            c.interrupt()
    for c in clients:
        c.wait_idle(timeout=60, quiet_for=0.3)


def make_folder(farm: list[ComfyServer], name: str, count: int) -> Path:
    folder = farm[0].input_dir / name
    folder.mkdir()
    for i in range(count):
        img.write_solid(folder / f"img{i:02d}.png", (i * 9 % 256, 0, 0))
    return folder


def queue_on(clients: list[ComfyClient], prompt: dict) -> None:
    for c in clients:
        c.queue_prompt(prompt)


def wait_all_idle(clients: list[ComfyClient], timeout: float = 180) -> None:
    for c in clients:
        c.wait_idle(timeout=timeout, quiet_for=1.0)


def assert_each_once(output: Path, count: int) -> collections.Counter:
    names = collections.Counter(saved_names(output))
    assert sorted(names) == [f"img{i:02d}" for i in range(count)], f"missing: {names}"
    twice = {n: k for n, k in names.items() if k > 1}
    assert not twice, f"processed more than once: {twice}"
    return names


def shared_row(client: ComfyClient, folder: Path) -> dict:
    """The newest status row of folder's batch on this server ({} before it has one)."""
    rows = batch_status(client, folder)
    return rows[0] if rows else {"current_file": "", "state": ""}


def test_three_servers_of_one_install_process_each_image_exactly_once(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str
) -> None:
    folder = make_folder(farm, test_name, 24)
    queue_on(clients, loader_to_saveimage(str(folder), test_name, sleep=0.2, shared_job="farm"))
    wait_all_idle(clients)
    assert_each_once(farm[0].output_dir / test_name, 24)
    rows = [shared_row(c, folder) for c in clients]
    assert all(r["shared"]["done"] == 24 and r["shared"]["total"] == 24 for r in rows), rows
    assert sum(r["done"] for r in rows) == 24, "each server's own part adds up to the folder"
    assert all(r["done"] > 0 for r in rows), "every server took part"
    assert rows[0]["text"].startswith("24 / 24 shared (0 in progress")
    # The claims live in a hidden folder inside the image folder; listing skips it.
    assert (folder / ".batch_image_processing").is_dir()
    # The next Queue starts a new shared pass: every image once more, again split.
    queue_on(clients, loader_to_saveimage(str(folder), f"{test_name}/second", sleep=0.1, shared_job="farm"))
    wait_all_idle(clients)
    assert_each_once(farm[0].output_dir / test_name / "second", 24)


def test_a_server_joins_a_shared_batch_half_done(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str
) -> None:
    folder = make_folder(farm, test_name, 12)
    prompt = loader_to_saveimage(str(folder), test_name, sleep=0.3, shared_job="join")
    clients[0].queue_prompt(prompt)
    clients[0].wait_for(lambda: shared_row(clients[0], folder).get("shared", {}).get("done", 0) >= 6,
                        timeout=60, what="half the folder on server 0")
    clients[1].queue_prompt(prompt)
    wait_all_idle(clients[:2])
    assert_each_once(farm[0].output_dir / test_name, 12)
    assert 0 < shared_row(clients[1], folder)["done"] <= 6


def test_stop_on_one_server_and_stop_on_all_servers(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str
) -> None:
    folder = make_folder(farm, test_name, 16)
    prompt = loader_to_saveimage(str(folder), test_name, sleep=0.4, shared_job="stops")
    queue_on(clients[:2], prompt)
    clients[0].wait_for(lambda: shared_row(clients[0], folder).get("shared", {}).get("done", 0) >= 2,
                        timeout=60, what="two images done")
    # Stop on server 0 stops server 0's chain; server 1 goes on alone.
    assert clients[0].request("POST", f"{ROUTE}/stop", {"node_id": "1"})[0] == 200
    clients[0].wait_idle(quiet_for=1.0)
    assert shared_row(clients[1], folder)["state"] == "running"
    # Stop on all servers (from server 0, whose own chain has ended): server 1 stops too.
    assert clients[0].request("POST", f"{ROUTE}/stop", {"node_id": "1", "all_servers": True})[0] == 200
    clients[1].wait_idle(quiet_for=1.0)
    row = shared_row(clients[1], folder)
    assert row["state"] == "stopped" and "Stop on all servers" in row["stop_reason"], row
    assert row["shared"]["done"] < 16
    # Continue on both: the shared batch resumes where it stands, every image exactly once.
    queue_on(clients[:2], prompt)
    wait_all_idle(clients[:2])
    assert_each_once(farm[0].output_dir / test_name, 16)


@pytest.mark.parametrize("policy", ["Skip on error", "Stop on error"])
def test_error_policies_hold_for_every_server(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str, policy: str
) -> None:
    folder = make_folder(farm, test_name, 10)
    prompt = loader_to_saveimage(str(folder), test_name, sleep=0.3, fail_if_contains="img03",
                                 shared_job=f"errors-{policy[:4]}", error_handling=policy)
    queue_on(clients, prompt)
    wait_all_idle(clients)
    rows = [shared_row(c, folder) for c in clients]
    saved = collections.Counter(saved_names(farm[0].output_dir / test_name))
    assert "img03" not in saved and all(k == 1 for k in saved.values())
    if policy == "Skip on error":
        assert len(saved) == 9
        assert all(r["shared"]["skipped"] == 1 and r["shared"]["done"] == 9 for r in rows), rows
    else:
        assert len(saved) < 9
        assert all(r["state"] == "stopped" for r in rows), rows
        assert all("img03" in r["last_error"] for r in rows), [r["last_error"] for r in rows]


def test_a_killed_server_s_image_is_retaken_after_the_lease(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str
) -> None:
    folder = make_folder(farm, test_name, 8)
    prompt = loader_to_saveimage(str(folder), test_name, sleep=1.5, shared_job="crash")
    queue_on(clients[:2], prompt)
    victim = farm[1]
    clients[1].wait_for(lambda: shared_row(clients[1], folder)["current_file"] != "", timeout=60,
                        what="server 1 in the middle of an image")
    held = shared_row(clients[1], folder)["current_file"]
    victim.stop(kill=True)  # kill -9, in the middle of the image
    started = time.monotonic()
    clients[0].wait_idle(timeout=120, quiet_for=2.0)
    assert_each_once(farm[0].output_dir / test_name, 8)
    assert time.monotonic() - started >= LEASE_S - 1.0 or held in saved_names(farm[0].output_dir / test_name)
    victim.start()  # for the next tests


def test_two_installs_share_only_the_folder_seen_under_different_paths(
    tmp_path: Path, test_name: str
) -> None:
    images = tmp_path / "nas" / "photos"
    images.mkdir(parents=True)
    for i in range(10):
        img.write_solid(images / f"img{i:02d}.png", (0, i * 20, 0))
    other_mount = tmp_path / "mnt-photos"
    os.symlink(images, other_mount)  # the second machine mounts the share elsewhere
    a = ComfyServer(tmp_path / "install-a", with_fixture_pack=True).start()
    b = ComfyServer(tmp_path / "install-b", with_fixture_pack=True).start()
    try:
        ca, cb = ComfyClient(a.url), ComfyClient(b.url)
        ca.queue_prompt(loader_to_saveimage(str(images), "out", sleep=0.3, shared_job="nas"))
        cb.queue_prompt(loader_to_saveimage(str(other_mount), "out", sleep=0.3, shared_job="nas"))
        wait_all_idle([ca, cb])
        names = saved_names(a.output_dir / "out") + saved_names(b.output_dir / "out")
        counts = collections.Counter(names)
        assert sorted(counts) == [f"img{i:02d}" for i in range(10)] and set(counts.values()) == {1}, counts
        assert saved_names(a.output_dir / "out") and saved_names(b.output_dir / "out"), "both took part"
    finally:
        a.stop()
        b.stop()


def test_a_read_only_folder_without_a_job_folder_gets_a_clear_error(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str, tmp_path: Path
) -> None:
    folder = make_folder(farm, test_name, 2)
    (folder / ".batch_image_processing").write_text("not a folder")  # claims cannot be written there
    clients[0].queue_prompt(loader_to_saveimage(str(folder), test_name, shared_job="ro"))
    clients[0].wait_idle()
    [entry] = [e for e in clients[0].history().values()
               if e["prompt"][2]["1"]["inputs"]["directory"] == str(folder)]
    message = next(d["exception_message"] for ev, d in entry["status"]["messages"] if ev == "execution_error")
    assert "shared_job_folder" in message and str(folder) in message, message
    # Naming a writable job folder makes it work.
    jobs = tmp_path / "jobs"
    clients[0].queue_prompt(loader_to_saveimage(str(folder), test_name, shared_job="ro",
                                                shared_job_folder=str(jobs)))
    clients[0].wait_idle()
    assert_each_once(farm[0].output_dir / test_name, 2)
    assert any(jobs.iterdir())


def test_servers_pressing_queue_with_reset_mode_do_not_restart_each_other(
    farm: list[ComfyServer], clients: list[ComfyClient], test_name: str
) -> None:
    folder = make_folder(farm, test_name, 10)
    prompt = loader_to_saveimage(str(folder), test_name, sleep=0.2, shared_job="reset-mode", iteration_mode="Reset")
    clients[0].queue_prompt(prompt)
    clients[0].wait_for(lambda: shared_row(clients[0], folder).get("done", 0) >= 2, what="two images on server 0")
    clients[1].queue_prompt(prompt)  # joins; it does not throw server 0's work away
    wait_all_idle(clients[:2])
    assert_each_once(farm[0].output_dir / test_name, 10)
