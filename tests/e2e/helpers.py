"""Reading what a batch did from ComfyUI's own history and output folder."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from harness import ComfyClient
from PIL import Image


@dataclass
class Run:
    number: float
    prompt_id: str
    status: str
    saved: list[str]
    client_id: str | None
    messages: list


def batch_runs(client: ComfyClient, directory: str) -> list[Run]:
    """Every finished prompt whose loader (node "1") points at directory, in queue order."""
    runs = []
    for pid, entry in client.history().items():
        number, _, prompt, extra, _ = entry["prompt"][:5]
        if prompt.get("1", {}).get("inputs", {}).get("directory") != directory:
            continue
        saved = [img["filename"] for out in entry.get("outputs", {}).values() for img in out.get("images", [])]
        status = entry.get("status") or {}
        runs.append(Run(number, pid, status.get("status_str", "?"), saved, extra.get("client_id"),
                        status.get("messages", [])))
    return sorted(runs, key=lambda r: r.number)


def saved_names(output_folder: Path) -> list[str]:
    """Base names of SaveImage results (name_00001_.png -> name), sorted by write time."""
    files = sorted(output_folder.glob("*.png"), key=lambda p: p.stat().st_mtime_ns)
    return [p.name.rsplit("_", 2)[0] for p in files]


def png_workflow(path: Path) -> dict | None:
    with Image.open(path) as img:
        text = img.info.get("workflow")
    return json.loads(text) if text else None


def batch_status(client: ComfyClient, directory: Path | str) -> list[dict]:
    """The status route's rows for the batches on directory (newest first)."""
    return [b for b in client.get("/batch_image_processing/status")["batches"] if b["directory"] == str(directory)]


def is_processing(client: ComfyClient, directory: Path | str, filename: str) -> bool:
    """True while the newest batch on directory is running with filename as its current image."""
    rows = batch_status(client, directory)
    return bool(rows) and rows[0]["state"] == "running" and rows[0]["current_file"] == filename


class EventListener:
    """The websocket events one browser (client_id) receives, collected on a background thread."""

    def __init__(self, server_url: str, client_id: str) -> None:
        self.events: list[tuple[str, dict]] = []
        self._url = server_url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self._url) as ws:
            self._connected.set()
            while not self._stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.2)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                data = json.loads(msg.data)
                self.events.append((data["type"], data.get("data") or {}))

    def __enter__(self) -> EventListener:
        self._thread.start()
        assert self._connected.wait(10), "websocket did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def of_type(self, event: str) -> list[dict]:
        return [d for t, d in list(self.events) if t == event]
