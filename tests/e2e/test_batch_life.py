"""A batch belongs to its workflow, and Cancel, Stop, Clear queue and Reset stop it at any moment.

User stories, each in a real ComfyUI driven over HTTP like the browser drives it.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import imagefiles as img
import pytest
from harness import ComfyClient, ComfyServer
from helpers import EventListener, batch_status, is_processing, saved_names
from workflows import loader_to_saveimage

ROUTE = "/batch_image_processing"
WORKFLOW_A = {"id": "aaaaaaaa-0000-4000-8000-00000000000a"}
WORKFLOW_B = {"id": "bbbbbbbb-0000-4000-8000-00000000000b"}


def status_of(client: ComfyClient, folder: Path, workflow: dict) -> dict:
    """The status row of workflow's batch on folder ({"done": 0} before it started)."""
    rows = [r for r in batch_status(client, folder) if r["workflow_id"] == workflow["id"]]
    assert len(rows) <= 1, "one workflow has several batches on one folder"
    return rows[0] if rows else {"done": 0}


def test_a_second_workflow_on_the_same_folder_runs_every_image_whatever_the_first_did(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(10):
        img.write_solid(input_folder / f"w{i}.png", (i, i, 0))
    folder = str(input_folder)
    # A is stopped half way; B (same template: loader node "1", same folder) then runs all ten.
    client.queue_prompt(loader_to_saveimage(folder, f"{test_name}/A", sleep=0.3), workflow=WORKFLOW_A)
    client.wait_for(lambda: status_of(client, input_folder, WORKFLOW_A)["done"] >= 4, what="A at image 5")
    status, _ = client.request("POST", f"{ROUTE}/stop", {"node_id": "1", "workflow_id": WORKFLOW_A["id"]})
    assert status == 200
    client.wait_idle()
    a_done = saved_names(output_folder / "A")
    assert 4 <= len(a_done) < 10
    client.queue_prompt(loader_to_saveimage(folder, f"{test_name}/B"), workflow=WORKFLOW_B)
    client.wait_idle()
    assert saved_names(output_folder / "B") == [f"w{i}" for i in range(10)]
    assert status_of(client, input_folder, WORKFLOW_B)["text"].startswith("10 / 10 - ")
    # A's position was not touched by B: Continue on A finishes exactly its remaining images.
    assert status_of(client, input_folder, WORKFLOW_A)["state"] == "stopped"
    client.queue_prompt(loader_to_saveimage(folder, f"{test_name}/A"), workflow=WORKFLOW_A)
    client.wait_idle()
    assert saved_names(output_folder / "A") == [f"w{i}" for i in range(10)]

    # B queued while A runs: both run every image (interleaved), neither is a "duplicate".
    client.queue_prompt(loader_to_saveimage(folder, f"{test_name}/A2", sleep=0.1), workflow=WORKFLOW_A)
    client.wait_for(lambda: is_processing(client, input_folder, "w1.png"), what="A at image 2")
    client.queue_prompt(loader_to_saveimage(folder, f"{test_name}/B2"), workflow=WORKFLOW_B)
    client.wait_idle()
    assert saved_names(output_folder / "A2") == [f"w{i}" for i in range(10)]
    assert saved_names(output_folder / "B2") == [f"w{i}" for i in range(10)]


def test_same_workflow_with_a_changed_seed_is_still_the_same_batch(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"s{i}.png", (0, i, i))
    first = loader_to_saveimage(str(input_folder), test_name, sleep=0.5)
    client.queue_prompt(first, workflow=WORKFLOW_A)
    client.wait_for(lambda: is_processing(client, input_folder, "s1.png"), what="image 2")
    changed = loader_to_saveimage(str(input_folder), test_name, sleep=0.25)  # another widget value
    with EventListener(client.base_url, client.client_id) as listener:
        client.queue_prompt(changed, workflow=WORKFLOW_A)
        client.wait_idle()
    assert saved_names(output_folder) == [f"s{i}" for i in range(4)], "the second press ran images twice"
    [refused] = listener.of_type("batch_image_processing.refused")
    assert refused["node_id"] == "1" and refused["workflow_id"] == WORKFLOW_A["id"]
    assert str(input_folder) in refused["text"] and "is running" in refused["text"]


@pytest.mark.parametrize("form", ["bare interrupt", "frontend cancel", "clear queue"])
def test_cancel_on_a_fast_workflow_stops_at_any_moment(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, test_name: str, form: str
) -> None:
    """~5 ms images: Cancel lands between two images most of the time, and must never be lost."""
    for i in range(150):
        img.write_solid(input_folder / f"f{i:03d}.png", (i % 256, 0, 0), size=(8, 8))
    rng = random.Random(hash(form))
    prompt = loader_to_saveimage(str(input_folder), test_name, iteration_mode="Reset")
    for attempt in range(5):
        client.queue_prompt(prompt)
        time.sleep(rng.uniform(0.05, 0.4))
        if form == "frontend cancel":  # the prompt the browser last saw running, maybe finished by now
            running = [item[1] for item in client.queue()["queue_running"]]
            last = running[0] if running else max(client.history().items(), key=lambda kv: kv[1]["prompt"][0])[0]
        log_start = len(comfy_server.log_text())
        if form == "bare interrupt":
            client.interrupt()
        elif form == "clear queue":
            client.request("POST", "/queue", {"clear": True})
        else:
            client.request("POST", "/interrupt", {"prompt_id": last})
        client.wait_idle(quiet_for=0.5)
        row = batch_status(client, input_folder)[0]
        assert row["state"] == "stopped", f"attempt {attempt}: {form} was lost, the batch ran on: {row['text']}"
        assert row["done"] < 150
        reason = "the queue was cleared" if form == "clear queue" else "cancelled"
        assert row["stop_reason"] == reason
        # the count when the server saw the request (the test's own HTTP timing does not count)
        seen = re.findall(rf"node 1: {reason} after (\d+) images", comfy_server.log_text()[log_start:])
        assert seen, f"attempt {attempt}: the server did not log the stop request"
        ran = row["done"] - int(seen[-1])
        assert ran <= 2, f"attempt {attempt}: {ran} images ran after {form} reached the server"



def test_clear_queue_during_an_image_lets_it_finish_and_stops(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"q{i}.png", (i, 0, 0))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=1.0))
    client.wait_for(lambda: is_processing(client, input_folder, "q1.png"), what="image 2")
    client.request("POST", "/queue", {"clear": True})
    client.wait_idle()
    assert saved_names(output_folder) == ["q0", "q1"]
    row = batch_status(client, input_folder)[0]
    assert row["state"] == "stopped" and row["text"] == "2 / 4 - stopped (the queue was cleared)"


def test_the_next_image_deleted_from_the_queue_ends_the_batch(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"d{i}.png", (0, 0, i))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=1.0))
    client.wait_for(lambda: is_processing(client, input_folder, "d0.png"), what="the first image")
    other = {
        "1": {"class_type": "BIPTestNoiseImage", "inputs": {"size": 8, "index": 0}},
        "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": 3.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    client.queue_prompt(other)  # runs next; the batch's next image waits behind it

    def next_image_id() -> str | None:
        pending = client.queue()["queue_pending"]
        ids = [it[1] for it in pending if any(n.get("class_type") == "BatchImageLoader" for n in it[2].values())]
        return ids[0] if ids else None

    client.wait_for(lambda: next_image_id() is not None, what="the next image queued")
    client.request("POST", "/queue", {"delete": [next_image_id()]})
    deadline = time.monotonic() + 1.0
    while batch_status(client, input_folder)[0]["state"] != "stopped":
        assert time.monotonic() < deadline, "still running 1 s after its next image was deleted"
        time.sleep(0.05)
    row = batch_status(client, input_folder)[0]
    assert row["stop_reason"] == "its next image was removed from the queue" and row["eta_s"] is None
    client.wait_idle()
    assert saved_names(output_folder) == ["d0"]


def test_stop_then_queue_at_once_resumes_and_reset_then_queue_starts_over(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(5):
        img.write_solid(input_folder / f"r{i}.png", (i, i, i))
    prompt = loader_to_saveimage(str(input_folder), test_name, sleep=0.4)
    client.queue_prompt(prompt)
    client.wait_for(lambda: is_processing(client, input_folder, "r1.png"), what="image 2")
    client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})
    client.queue_prompt(prompt)  # within milliseconds of Stop: Continue resumes after the stopped image
    client.wait_idle()
    assert saved_names(output_folder) == [f"r{i}" for i in range(5)]

    client.request("POST", f"{ROUTE}/reset", {"node_id": "1"})
    client.queue_prompt(prompt)
    client.wait_for(lambda: is_processing(client, input_folder, "r1.png"), what="image 2 of the new pass")
    client.request("POST", f"{ROUTE}/reset", {"node_id": "1"})
    client.queue_prompt(prompt)  # after Reset: a new pass from start_index, the running image finishes
    client.wait_idle()
    names = saved_names(output_folder)[5:]
    assert names == ["r0", "r1"] + [f"r{i}" for i in range(5)]
    assert batch_status(client, input_folder)[0]["text"].startswith("5 / 5 - ")


def test_a_press_from_another_browser_is_told_why_it_does_nothing(
    comfy_server: ComfyServer, client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"b{i}.png", (i, 0, i))
    prompt = loader_to_saveimage(str(input_folder), test_name, sleep=0.5)
    client.queue_prompt(prompt)
    other_browser = ComfyClient(comfy_server.url)
    client.wait_for(lambda: is_processing(client, input_folder, "b0.png"), what="the first image")
    with EventListener(comfy_server.url, other_browser.client_id) as listener:
        other_browser.queue_prompt(prompt)
        other_browser.wait_idle()
    [refused] = listener.of_type("batch_image_processing.refused")
    assert refused["batch"]["state"] == "running" and refused["batch"]["total"] == 3
    assert saved_names(output_folder) == ["b0", "b1", "b2"]
