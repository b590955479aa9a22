"""Stop on error / Skip on error, for unreadable files and for failures further down the workflow."""

from __future__ import annotations

import time
from pathlib import Path

import imagefiles as img
from harness import ComfyClient, ComfyServer
from helpers import batch_runs, batch_status, is_processing, saved_names
from workflows import loader_to_saveimage


def make_folder_with_bad_files(folder: Path) -> None:
    img.write_solid(folder / "f1.png", (10, 10, 10))
    img.write_zero_byte(folder / "f2.png")
    img.write_solid(folder / "f3.png", (30, 30, 30))
    img.write_text_as_image(folder / "f4.png")
    img.write_truncated_png(folder / "f5.png")
    img.write_solid(folder / "f6.png", (60, 60, 60))


def test_stop_on_error_names_the_file_and_queues_nothing_more(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    make_folder_with_bad_files(input_folder)
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    client.wait_idle()
    assert saved_names(output_folder) == ["f1"]
    runs = batch_runs(client, str(input_folder))
    assert [r.status for r in runs] == ["success", "error"]
    error = next(m[1] for m in runs[-1].messages if m[0] == "execution_error")
    assert "f2.png" in error["exception_message"]
    assert "empty (0 bytes)" in error["exception_message"]
    assert error["node_type"] == "BatchImageLoader"


def test_skip_on_error_moves_on_and_never_loops(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    make_folder_with_bad_files(input_folder)
    img.write_zero_byte(input_folder / "f7.png")  # an unreadable LAST file must not wrap around
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, error_handling="Skip on error"))
    client.wait_idle()
    assert saved_names(output_folder) == ["f1", "f3", "f6"]
    runs = batch_runs(client, str(input_folder))
    assert len(runs) == 4  # three images, then one run that finds only the unreadable f7.png
    assert all(r.status == "success" for r in runs)
    time.sleep(1.0)
    assert len(batch_runs(client, str(input_folder))) == 4
    log = comfy_server.log_text()
    assert "3 processed, 4 skipped" in log
    for name in ("f2.png", "f4.png", "f5.png", "f7.png"):
        assert f"  {name}: " in log, name


def test_downstream_failure_obeys_the_error_policy(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(1, 5):
        img.write_solid(input_folder / f"d{i}.png", (i, i, i))
    skip = loader_to_saveimage(str(input_folder), test_name, fail_if_contains="d2", error_handling="Skip on error")
    client.queue_prompt(skip)
    client.wait_idle()
    assert saved_names(output_folder) == ["d1", "d3", "d4"]

    stop = loader_to_saveimage(str(input_folder), test_name, fail_if_contains="d3", iteration_mode="Reset")
    client.queue_prompt(stop)
    client.wait_idle()
    assert saved_names(output_folder) == ["d1", "d3", "d4", "d1", "d2"]
    assert batch_runs(client, str(input_folder))[-1].status == "error"


def test_a_rejected_next_prompt_stops_the_batch_and_names_the_node(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    """The workflow turns invalid mid-batch (a core LoadImage's file is deleted): ComfyUI answers
    the next POST with 400; the batch stops with the node's error in the log and in its status."""
    for i in range(3):
        img.write_solid(input_folder / f"v{i}.png", (i, i, i))
    extra = comfy_server.input_dir / f"{test_name}_extra.png"
    img.write_solid(extra, (1, 1, 1))
    prompt = loader_to_saveimage(str(input_folder), test_name, sleep=2.0)
    # loader + LoadImage -> ImageBatch -> sleep -> ...: LoadImage has run before the sleep starts,
    # and the only output needs it, so the next prompt cannot pass validation without its file.
    prompt["20"] = {"class_type": "LoadImage", "inputs": {"image": extra.name}}
    prompt["22"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["20", 0]}}
    prompt["10"]["inputs"]["images"] = ["22", 0]
    client.queue_prompt(prompt)
    client.wait_for(lambda: is_processing(client, input_folder, "v0.png"), timeout=30, what="the first image")
    time.sleep(0.7)  # LoadImage and ImageBatch are done within ms; the 2 s sleep node is running
    extra.unlink()
    client.wait_idle()
    assert saved_names(output_folder) == ["v0", "v0"]  # one run, a batch of two images
    log = comfy_server.log_text()
    assert "ComfyUI rejected the next prompt" in log and "node 20 (LoadImage)" in log
    [info] = batch_status(client, input_folder)
    assert info["state"] == "stopped" and "node 20 (LoadImage)" in info["last_error"]
