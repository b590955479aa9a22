"""Reading what a batch did from ComfyUI's own history and output folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
