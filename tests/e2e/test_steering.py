"""Watch and steer a batch over HTTP: status, stop (also mid-image), reset, and the browser's events."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import aiohttp
import imagefiles as img
from harness import ComfyClient, ComfyServer
from helpers import batch_status, is_processing, saved_names
from workflows import loader_to_saveimage

ROUTE = "/batch_image_processing"


def test_status_reports_a_finished_batch(client: ComfyClient, input_folder: Path, test_name: str) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"s{i}.png", (i, i, i))
    img.write_zero_byte(input_folder / "s9.png")
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, error_handling="Skip on error"))
    client.wait_idle()
    [info] = batch_status(client, input_folder)
    assert info["node_id"] == "1" and info["state"] == "complete"
    assert (info["done"], info["skipped"], info["position"], info["total"]) == (3, 1, 4, 4)
    assert info["text"].startswith("4 / 4 - ") and info["text"].endswith("done, 1 skipped")
    assert info["rate_per_s"] > 0 and info["eta_s"] is None
    # Served under /api too, like every ComfyUI route.
    assert any(b["key"] == info["key"] for b in client.get(f"/api{ROUTE}/status")["batches"])


def test_stop_while_an_image_runs_lets_it_finish_and_runs_nothing_more(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(5):
        img.write_solid(input_folder / f"t{i}.png", (i, 0, 0))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=1.5))

    client.wait_for(lambda: is_processing(client, input_folder, "t0.png"), timeout=60, what="the first image")
    assert saved_names(output_folder) == []
    status, body = client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})
    assert status == 200 and len(body["stopped"]) >= 1
    client.wait_idle()
    assert saved_names(output_folder) == ["t0"], "the running image must finish, and nothing more run"
    [info] = [b for b in batch_status(client, input_folder) if b["key"] in body["stopped"]]
    assert info["state"] == "stopped" and info["position"] == 1 and info["last_error"] == ""


def test_reset_then_queue_starts_over(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(4):
        img.write_solid(input_folder / f"r{i}.png", (0, i, 0))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=0.6))
    client.wait_for(lambda: len(saved_names(output_folder)) >= 2, timeout=60, what="two images saved")
    client.request("POST", f"{ROUTE}/stop", {"all": True})
    client.wait_idle()
    partial = saved_names(output_folder)
    assert 2 <= len(partial) < 4
    status, body = client.request("POST", f"{ROUTE}/reset", {"node_id": "1"})
    assert status == 200 and body["reset"]
    assert batch_status(client, input_folder) == []
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))  # Continue: nothing to continue
    client.wait_idle()
    assert saved_names(output_folder) == [*partial, "r0", "r1", "r2", "r3"]


def test_bad_requests_get_400_and_unknown_ids_404(client: ComfyClient) -> None:
    for path in (f"{ROUTE}/stop", f"{ROUTE}/reset"):
        status, body = client.request("POST", path, None)
        assert status == 400 and "JSON" in body["error"]
        status, body = client.request("POST", path, {"node": 3})
        assert status == 400 and "missing node_id" in body["error"]
        status, body = client.request("POST", path, {"node_id": "no-such-node"})
        assert status == 404 and "no-such-node" in body["error"]
    status, body = client.request("POST", f"{ROUTE}/reset", {"all": True})
    assert status == 400, "reset never forgets every batch at once"
    status, body = client.request("POST", f"{ROUTE}/stop", {"all": True})
    assert status == 200


def test_browser_client_gets_progress_and_status_events(
    comfy_server: ComfyServer, client: ComfyClient, input_folder: Path, test_name: str
) -> None:
    for i in range(3):
        img.write_solid(input_folder / f"e{i}.png", (0, 0, i))
    events: list[tuple[str, dict]] = []
    connected = threading.Event()

    async def listen() -> None:
        url = comfy_server.url.replace("http", "ws") + f"/ws?clientId={client.client_id}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            connected.set()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    events.append((data["type"], data.get("data") or {}))
                    if data["type"] == "batch_image_processing.status" and data["data"]["state"] == "complete":
                        return

    thread = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(listen(), 60)), daemon=True)
    thread.start()
    assert connected.wait(10)
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name))
    thread.join(60)
    progress = [d for t, d in events if t == "progress" and d.get("node") == "1"]
    assert [(d["value"], d["max"]) for d in progress] == [(0, 3), (1, 3), (2, 3)]
    statuses = [d for t, d in events if t == "batch_image_processing.status"]
    assert statuses[-1]["text"].startswith("3 / 3") and statuses[-1]["state"] == "complete"
    executed = [d for t, d in events if t == "executed" and d.get("node") == "4"]
    assert len(executed) == 3, "previews of every image reach the browser that pressed Queue"


def test_stop_removes_a_queued_next_image_from_the_queue(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    """The next image waits behind another workflow in the queue: Stop takes it out of the queue."""
    for i in range(3):
        img.write_solid(input_folder / f"w{i}.png", (i, 0, i))
    client.queue_prompt(loader_to_saveimage(str(input_folder), test_name, sleep=1.0))
    client.wait_for(lambda: is_processing(client, input_folder, "w0.png"), timeout=60, what="the first image")
    other = {
        "1": {"class_type": "BIPTestNoiseImage", "inputs": {"size": 8, "index": 0}},
        "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": 3.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    other_id = client.queue_prompt(other)  # runs after the first image; the batch's next one waits behind it

    def next_image_waiting() -> bool:
        q = client.queue()
        return [item[1] for item in q["queue_running"]] == [other_id] and len(q["queue_pending"]) == 1

    client.wait_for(next_image_waiting, timeout=60, what="the batch's next image waiting in the queue")
    status, body = client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})
    assert status == 200 and body["stopped"]
    assert client.queue()["queue_pending"] == [], "the queued next image must be removed"
    client.wait_idle()
    assert saved_names(output_folder) == ["w0"]
    [info] = batch_status(client, input_folder)
    assert info["state"] == "stopped" and info["position"] == 1
