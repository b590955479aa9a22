"""Adversarial tests for issue 9 (a batch's life: stop, cancel, reset, resume, identity).

Each test is a defect found by attacking the promises of README "Progress, stop, reset, resume"
and "Which presses are the same batch"; they fail until the product code is fixed.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import imagefiles as img
from harness import ComfyClient, ComfyServer
from helpers import batch_runs, batch_status, is_processing, saved_names
from workflows import loader_to_saveimage

ROUTE = "/batch_image_processing"


def _row(client: ComfyClient, folder: Path) -> dict:
    return batch_status(client, folder)[0]


def _errors(client: ComfyClient, folder: Path) -> list[str]:
    """exception_message of every failed run on folder."""
    out = []
    for run in batch_runs(client, str(folder)):
        for event, data in run.messages:
            if event == "execution_error":
                out.append(data.get("exception_message", ""))
    return out


# --------------------------------------------------------------------------------------------
# Stop, then Queue as soon as the loader shows "stopped": README "Resume ... also when you press
# it a few milliseconds after Stop". The press lands < 0.5 s after the chain ended, from the same
# browser, so Batch.is_echo_or_duplicate calls it the frontend's auto-queue and the run FAILS.
# --------------------------------------------------------------------------------------------
def test_stop_then_queue_right_after_the_stopped_image_finished_resumes(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"s{i}.png", (i, i, 0))
    prompt = loader_to_saveimage(str(input_folder), test_name, sleep=0.4)
    client.queue_prompt(prompt)
    client.wait_for(lambda: is_processing(client, input_folder, "s1.png"), what="image 2")
    status, _ = client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})
    assert status == 200
    # The user watches the loader: it says "stopped", and they press Queue (Continue) at once.
    client.wait_for(lambda: _row(client, input_folder)["state"] == "stopped", timeout=10, what="stopped")
    client.queue_prompt(prompt)
    client.wait_idle()
    assert _errors(client, input_folder) == [], "the resume press failed"
    assert saved_names(output_folder) == [f"s{i}" for i in range(4)], "Continue after Stop did not resume"


def test_stop_then_queue_on_a_fast_workflow_resumes(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    """~5 ms images: by the time the Queue press (sent right after Stop answered) runs, the chain has
    ended, so the press is within 0.5 s of the end and is refused as an auto-queue echo."""
    for i in range(60):
        img.write_solid(input_folder / f"f{i:03d}.png", (i, 0, 0), size=(8, 8))
    prompt = loader_to_saveimage(str(input_folder), test_name)
    client.queue_prompt(prompt)
    client.wait_for(lambda: batch_status(client, input_folder) and _row(client, input_folder)["done"] >= 5,
                    what="five images done")
    status, _ = client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})
    assert status == 200
    time.sleep(0.05)  # a human-fast press of Queue after pressing Stop
    client.queue_prompt(prompt)
    client.wait_idle()
    assert _errors(client, input_folder) == [], "the resume press failed"
    assert sorted(saved_names(output_folder)) == [f"f{i:03d}" for i in range(60)]


# --------------------------------------------------------------------------------------------
# A client that chooses its own prompt_id and reuses it (a script queueing "job-1" every time).
# ComfyUI keeps the old history entry until the new run ends, so the watcher sees the id as
# "finished" at once and concludes the run before the loader has recorded its image.
# --------------------------------------------------------------------------------------------
def test_a_reused_prompt_id_does_not_wedge_the_batch(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    img.write_png(input_folder / "j0.png", 2500, 2500)  # decoding it takes a while: the watcher's window
    for i in (1, 2):
        img.write_solid(input_folder / f"j{i}.png", (0, i, 0))
    job = str(uuid.uuid4())  # canonical: ComfyUI 0.33 accepts only those, and reusing one is allowed
    # First a harmless, unrelated prompt with this id, so it is in ComfyUI's history.
    noise = {
        "1": {"class_type": "BIPTestNoiseImage", "inputs": {"size": 8, "index": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    client.queue_prompt(noise, prompt_id=job)
    client.wait_idle(quiet_for=0.2)
    # Then the batch, queued by the script with the same id.
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=0.3), prompt_id=job)
    client.wait_idle()
    row = _row(client, input_folder)
    assert row["state"] == "complete", f"the batch is wedged: {row['text']} (phase {row['phase']})"
    assert saved_names(output_folder) == ["j0", "j1", "j2"]


# --------------------------------------------------------------------------------------------
# Workflow ids longer than 64 characters are cut (batch_identity.workflow_identity), but the
# Stop/Reset routes compare the full id the client sends: Stop answers 404 and the batch runs on.
# --------------------------------------------------------------------------------------------
LONG_ID = "customer-archive-2024-" + "x" * 50 + "-final"


def test_stop_with_a_long_workflow_id_stops_its_batch(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"l{i}.png", (i, 0, i))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=0.5), workflow={"id": LONG_ID})
    client.wait_for(lambda: is_processing(client, input_folder, "l0.png"), what="the first image")
    status, body = client.request("POST", f"{ROUTE}/stop", {"node_id": "1", "workflow_id": LONG_ID})
    client.wait_idle()
    assert status == 200, f"Stop with the workflow's own id answered {status}: {body}"
    assert saved_names(output_folder) == ["l0"]


def test_two_workflows_whose_long_ids_share_a_prefix_are_two_batches(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"p{i}.png", (i, 0, 0))
    prefix = "team-render-farm/" + "z" * 60
    wf_a, wf_b = {"id": prefix + "/job-A"}, {"id": prefix + "/job-B"}
    client.queue_prompt(loader_to_saveimage(str(input_folder), f"{test_name}/A", sleep=0.3), workflow=wf_a)
    client.wait_for(lambda: is_processing(client, input_folder, "p0.png"), what="A's first image")
    client.queue_prompt(loader_to_saveimage(str(input_folder), f"{test_name}/B"), workflow=wf_b)
    client.wait_idle()
    assert saved_names(output_folder / "A") == ["p0", "p1", "p2"]
    assert saved_names(output_folder / "B") == ["p0", "p1", "p2"], "workflow B was refused as workflow A's batch"


# --------------------------------------------------------------------------------------------
# Queue pressed twice, then Cancel while the second (refused) press runs. The refused press is a
# prompt of the batch's own workflow, yet queue_requests.batches_to_stop treats it as "a prompt of
# no batch": a bare interrupt is taken as meant for it, and its id is not in recent_prompts, so the
# frontend's Cancel {"prompt_id": <it>} is ignored too. ComfyUI interrupts the refused press (which
# does nothing) and the batch runs on.
# --------------------------------------------------------------------------------------------
import pytest  # noqa: E402


def _with_side_branch(prompt: dict, seconds: float, seed: int) -> dict:
    """The workflow also has a slow branch that does not depend on the loader (a refused press
    still runs it; seed: a widget value, like a randomized seed, so ComfyUI does not cache it)."""
    prompt = dict(prompt)
    prompt["20"] = {"class_type": "BIPTestNoiseImage", "inputs": {"size": 8, "index": seed}}
    prompt["21"] = {"class_type": "BIPTestSleep", "inputs": {"images": ["20", 0], "seconds": seconds}}
    prompt["22"] = {"class_type": "PreviewImage", "inputs": {"images": ["21", 0]}}
    return prompt


@pytest.mark.parametrize("form", ["bare interrupt", "frontend cancel"])
def test_cancel_during_refused_press(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str, form: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"d{i}.png", (i, 0, 0))
    # Each image takes 0.5 s on the loader's path, so the batch is still going when the second
    # press runs (whichever of its branches ComfyUI executes first).
    base = loader_to_saveimage(str(input_folder), test_name, sleep=0.5)
    client.queue_prompt(_with_side_branch(base, 0.2, seed=1))
    client.wait_for(lambda: batch_status(client, input_folder) != [], what="the batch to start")
    second = client.queue_prompt(_with_side_branch(base, 1.0, seed=2))  # a second press: refused when it runs

    client.wait_for(lambda: [it[1] for it in client.queue()["queue_running"]] == [second], timeout=30,
                    what="the second press running")
    time.sleep(0.2)  # its side branch runs (its loader may not have run yet)
    saved_at_cancel = saved_names(output_folder)  # d0, or d0 and d1 when the press was queued behind d1
    if form == "bare interrupt":
        client.interrupt()
    else:
        client.request("POST", "/interrupt", {"prompt_id": second})  # what the queue's Cancel sends
    client.wait_idle()
    row = _row(client, input_folder)
    assert row["state"] == "stopped", f"Cancel was lost, the batch ran on: {row['text']}"
    assert saved_names(output_folder) == saved_at_cancel, "an image ran after Cancel"


# --------------------------------------------------------------------------------------------
# {"prompt_id": ""} is a global interrupt for ComfyUI (empty id is falsy), but the pack reads it as
# "cancel the prompt with id ''" and stops nothing: one that lands between two images is lost.
# --------------------------------------------------------------------------------------------
def test_interrupt_with_an_empty_prompt_id_stops_a_fast_batch(
    client: ComfyClient, input_folder: Path, test_name: str
) -> None:
    for i in range(150):
        img.write_solid(input_folder / f"e{i:03d}.png", (i % 256, 0, 0), size=(8, 8))
    prompt = loader_to_saveimage(str(input_folder), test_name, iteration_mode="Reset")
    for attempt in range(5):
        client.queue_prompt(prompt)
        time.sleep(0.1 + 0.05 * attempt)
        client.request("POST", "/interrupt", {"prompt_id": ""})
        client.wait_idle(quiet_for=0.5)
        row = _row(client, input_folder)
        assert row["state"] == "stopped", f"attempt {attempt}: the interrupt was lost: {row['text']}"


# --------------------------------------------------------------------------------------------
# The frontend's Cancel sends the prompt id it last saw running. Against a remote server (tens of
# ms of latency) and ~5 ms images, that id is several images old: the pack only remembers the last
# 4 prompts of a batch (Batch.recent_prompts maxlen=4), ComfyUI skips an id that is not running,
# and the Cancel is lost.
# --------------------------------------------------------------------------------------------
def test_cancel_with_the_id_of_an_image_a_few_images_back_stops_the_batch(
    client: ComfyClient, input_folder: Path, test_name: str
) -> None:
    for i in range(300):
        img.write_solid(input_folder / f"c{i:03d}.png", (i % 256, 0, 0), size=(8, 8))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    client.wait_for(lambda: batch_status(client, input_folder) and _row(client, input_folder)["done"] >= 20,
                    what="twenty images done")
    runs = batch_runs(client, str(input_folder))
    seen = runs[-6].prompt_id  # the browser's view lags ~6 images (~30-60 ms) behind the server
    client.request("POST", "/interrupt", {"prompt_id": seen})
    client.wait_idle(quiet_for=0.5)
    row = _row(client, input_folder)
    assert row["state"] == "stopped" and row["done"] < 60, f"Cancel was lost: {row['text']}"


# --------------------------------------------------------------------------------------------
# "The routes never answer 500": a state file the store cannot read as this version's BatchState
# (an older/newer pack's, or hand-edited) makes GET status and POST stop {"all": true} answer 500;
# StateStore.load only catches OSError/ValueError/TypeError at load time.
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [
    "[]",
    json.dumps({"key": "node7-0123456789ab", "node_id": "7", "directory": "/x", "total": 3, "skipped": 2}),
])
def test_unreadable_state_file_no_500(
    comfy_server: ComfyServer, client: ComfyClient, content: str
) -> None:
    folder = comfy_server.user_dir / "batch_image_processing"
    folder.mkdir(parents=True, exist_ok=True)
    stray = folder / "node7-0123456789ab.json"
    stray.write_text(content)
    try:
        status, body = client.request("GET", f"{ROUTE}/status")
        assert status == 200, f"status answered {status}: {body}"
        status, body = client.request("POST", f"{ROUTE}/stop", {"all": True})
        assert status == 200, f"stop answered {status}: {body}"
    finally:
        stray.unlink()


# --------------------------------------------------------------------------------------------
# The pack's reading of POST /interrupt differs from ComfyUI's the other way too: a body ComfyUI
# rejects (500: nested too deep, a JSON list, bad UTF-8) or reads as a targeted cancel of a prompt
# that is not running ({"prompt_id": 12345}: ComfyUI skips it) interrupts nothing, yet
# comfy_bridge._hooked turns it into {} and queue_requests.batches_to_stop into a bare interrupt
# that stops every running batch.
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 100000, b"[1, 2]", b'{"prompt_id": 12345}'],
                         ids=["nested", "list", "int-id"])
def test_interrupt_comfyui_ignores_stops_nothing(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str, body: bytes
) -> None:
    import urllib.error
    import urllib.request

    for i in range(3):
        img.write_solid(input_folder / f"g{i}.png", (i, 0, 0))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=0.5))
    client.wait_for(lambda: is_processing(client, input_folder, "g0.png"), what="the first image")
    req = urllib.request.Request(client.base_url + "/interrupt", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=30).close()
    except urllib.error.HTTPError:
        pass  # ComfyUI's own handler refuses it
    client.wait_idle()
    runs = batch_runs(client, str(input_folder))
    assert all(r.status == "success" for r in runs), "ComfyUI interrupted nothing"
    assert saved_names(output_folder) == ["g0", "g1", "g2"], "a request that cancelled nothing stopped the batch"
