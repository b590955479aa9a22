"""Press Queue once: every image exactly once, in natural order, then the queue goes quiet."""

from __future__ import annotations

import json
import time
from pathlib import Path

import imagefiles as img
import pytest
from harness import ComfyClient
from helpers import batch_runs, batch_status, is_processing, png_workflow, saved_names
from workflows import loader_to_saveimage, loader_to_saver

NATURAL_NAMES = ["img1.png", "img2.jpg", "IMG3.webp", "img10.bmp", "img11.tif", "img20.gif", "img100.tiff"]


def make_mixed_folder(folder: Path) -> list[str]:
    """Mixed formats with names whose lexicographic order differs from the natural one."""
    for i, name in enumerate(NATURAL_NAMES):
        img.write_solid(folder / name, (i * 30, 100, 200))
    (folder / ".hidden.png").write_bytes((folder / "img1.png").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    return [n.rsplit(".", 1)[0] for n in NATURAL_NAMES]


def test_queue_once_processes_each_image_once_in_natural_order(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    expected = make_mixed_folder(input_folder)
    workflow = {"nodes": [{"id": 1, "type": "BatchImageLoader"}], "marker": test_name}
    first = client.queue_prompt(loader_to_saveimage(str(input_folder), test_name), workflow=workflow)
    client.wait_idle()

    runs = batch_runs(client, str(input_folder))
    assert [r.status for r in runs] == ["success"] * len(expected)
    assert runs[0].prompt_id == first
    assert saved_names(output_folder) == expected
    assert [r.saved[0].rsplit("_", 2)[0] for r in runs] == expected
    # Every result carries the workflow, and every run reports to the browser that queued it.
    for png in output_folder.glob("*.png"):
        assert png_workflow(png) == workflow, png.name
    assert {r.client_id for r in runs} == {client.client_id}
    q = client.queue()
    assert q["queue_running"] == [] and q["queue_pending"] == []


def test_queue_pressed_twice_still_runs_each_image_once(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"p{i}.png", (i, i, i))
    prompt = loader_to_saveimage(str(input_folder), test_name, sleep=0.3)
    for _ in range(3):  # impatient presses land while the chain hands over from one image to the next
        client.queue_prompt(prompt)
    client.wait_idle()
    assert sorted(saved_names(output_folder)) == ["p0", "p1", "p2", "p3"]
    successful_saves = [r for r in batch_runs(client, str(input_folder)) if r.saved]
    assert len(successful_saves) == 4


def test_cancel_stops_the_batch_with_nothing_left_in_queue(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(6):
        img.write_solid(input_folder / f"c{i}.png", (i, 0, 0))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=1.0))
    # Cancel while the second image runs (its 1 s wait): the end of a prompt is the next test's case.
    client.wait_for(lambda: is_processing(client, input_folder, "c1.png"), timeout=60, what="second image running")
    client.interrupt()
    client.wait_idle()
    saved = saved_names(output_folder)
    assert saved == ["c0"]
    time.sleep(1.0)
    assert saved_names(output_folder) == saved, "images ran after Cancel"
    runs = batch_runs(client, str(input_folder))
    assert runs[-1].status == "error"
    assert any(m[0] == "execution_interrupted" for m in runs[-1].messages)

    # Pressing Queue again (Continue) picks up at the cancelled image and finishes the folder.
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    client.wait_idle()
    assert saved_names(output_folder) == [f"c{i}" for i in range(6)]


@pytest.mark.parametrize("via", ["http", "process"])
def test_cancel_after_the_last_node_of_an_image_stops_the_batch_after_it(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str, via: str
) -> None:
    """A Cancel that lands after the prompt's last node: ComfyUI finishes that image as a success
    and forgets the request when the next prompt starts. The batch must still stop (0.33 spends
    longer after the last node, so users hit this there)."""
    for i in range(4):
        img.write_solid(input_folder / f"e{i}.png", (0, 0, i))
    prompt = loader_to_saver(str(input_folder), str(output_folder))
    prompt["20"] = {"class_type": "BIPTestCancelAtEnd",  # after the saver: its input is the saver's output
                    "inputs": {"images": ["3", 0], "name": ["1", 2], "cancel_if_contains": "e1", "via": via}}
    client.queue_prompt(prompt)
    client.wait_idle()
    time.sleep(0.5)

    def saved() -> list[str]:
        return sorted(p.stem for p in output_folder.glob("*.png"))

    assert saved() == ["e0", "e1"], "the cancelled image finished, nothing ran after it"
    q = client.queue()
    assert q["queue_running"] == [] and q["queue_pending"] == []
    assert batch_status(client, input_folder)[0]["state"] == "stopped"

    # Continue picks up after the finished image: every image exactly once.
    prompt["20"]["inputs"]["cancel_if_contains"] = ""
    client.queue_prompt(prompt)
    client.wait_idle()
    assert saved() == ["e0", "e1", "e2", "e3"]
    assert len(list(output_folder.glob("*"))) == 4


def test_reset_starts_over_but_continuations_do_not_reset(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"r{i}.png", (0, i, 0))
    prompt = loader_to_saveimage(str(input_folder), test_name, iteration_mode="Reset")
    client.queue_prompt(prompt)
    client.wait_idle()
    assert saved_names(output_folder) == ["r0", "r1", "r2"]
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, iteration_mode="Reset", start_index=1))
    client.wait_idle()
    assert saved_names(output_folder) == ["r0", "r1", "r2", "r1", "r2"]


def test_continue_after_complete_starts_a_new_pass_and_sees_new_files(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    img.write_solid(input_folder / "a1.png", (1, 1, 1))
    img.write_solid(input_folder / "a2.png", (2, 2, 2))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    client.wait_idle()
    img.write_solid(input_folder / "a3.png", (3, 3, 3))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    client.wait_idle()
    assert saved_names(output_folder) == ["a1", "a2", "a1", "a2", "a3"]


def test_invalid_folder_fails_validation_with_a_clear_message(client: ComfyClient, input_folder: Path) -> None:
    cases = {
        str(input_folder / "missing"): "does not exist",
        str(input_folder / "file.png"): "is a file, not a folder",
        str(input_folder / "empty"): "No matching images",
        "": "directory is empty",
    }
    img.write_solid(input_folder / "file.png", (0, 0, 0))
    (input_folder / "empty").mkdir()
    (input_folder / "empty" / "readme.txt").write_text("x")
    for directory, expected in cases.items():
        status, body = client.request("POST", "/prompt", {"prompt": loader_to_saveimage(directory, "x")})
        assert status == 400, directory
        assert expected in json.dumps(body["node_errors"]), (directory, body)


def test_an_auto_queue_client_never_gets_an_image_twice(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    """A frontend in "Run (Instant)" mode without this pack's extension: it queues again whenever the
    queue is empty, and stops only when a run ends in an error (as ComfyUI's frontend does)."""
    import threading

    for i in range(4):
        img.write_solid(input_folder / f"q{i}.png", (i, i, 0))
    prompt = loader_to_saveimage(str(input_folder), test_name)
    queued: list[str] = [client.queue_prompt(prompt)]
    stop = threading.Event()

    def auto_queue() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            q = client.queue()
            if not q["queue_running"] and not q["queue_pending"]:
                last = client.get(f"/history/{queued[-1]}").get(queued[-1])
                if last and last["status"]["status_str"] == "error":
                    return  # the frontend stops auto-queueing after an execution error
                if last:
                    queued.append(client.queue_prompt(prompt))
            time.sleep(0.002)

    thread = threading.Thread(target=auto_queue, daemon=True)
    thread.start()
    thread.join(40)
    stop.set()
    client.wait_idle()
    assert sorted(saved_names(output_folder)) == ["q0", "q1", "q2", "q3"]
    last = client.get(f"/history/{queued[-1]}")[queued[-1]]
    error = next(m[1] for m in last["status"]["messages"] if m[0] == "execution_error")
    assert "auto-queue" in error["exception_message"]
