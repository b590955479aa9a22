"""What the browser is told: a progress bar and a status line on the loader, and a refused press.

Events go to the browser that runs the batch (its client_id), or, for a press that does
nothing, to the browser that pressed Queue, so the person who pressed sees why.
"""

from __future__ import annotations

from .. import log
from ..comfy import bridge
from .batch import Batch
from .state import BatchSettings

STATUS_EVENT = "batch_image_processing.status"
REFUSED_EVENT = "batch_image_processing.refused"


class BatchEvents:
    """Sends the pack's websocket events; best effort (no server in unit tests, or one closing)."""

    def status(self, batch: Batch, prompt_id: str | None = None) -> None:
        """Progress of batch on its loader (prompt_id: the prompt whose progress bar to draw)."""
        if batch.detached:
            return
        info = batch.describe()
        try:
            if prompt_id is not None:
                bridge.send_event("progress", {"value": info["position"], "max": info["total"],
                                               "prompt_id": prompt_id, "node": batch.settings.node_id},
                                  batch.client_id)
            bridge.send_event(STATUS_EVENT, info, batch.client_id)
        except Exception:
            log.debug("could not send the batch status")

    def refused(self, settings: BatchSettings, prompt_id: str, client_id: str | None, batch: Batch,
                reason: str) -> None:
        """A Queue press that does nothing: batch runs ("running"), or ran when the press was queued
        ("queued_while_running")."""
        state = batch.state
        where = f"image {min(state.next_index + 1, state.total)}/{state.total}"
        if reason == "running":
            text = (f"Not started: the batch on '{settings.directory}' is running (at {where}). Each image is "
                    "processed once: wait for it, or press Stop batch first.")
        else:
            text = (f"Not started: this run was queued while the batch on '{settings.directory}' was running "
                    f"(now at {where}). Each image is processed once: press Queue again to resume.")
        log.warning("node %s: prompt %s does nothing: %s", settings.node_id, prompt_id, text)
        try:
            bridge.send_event(REFUSED_EVENT, {"node_id": settings.node_id, "workflow_id": settings.workflow_id,
                                              "directory": settings.directory, "prompt_id": prompt_id,
                                              "reason": reason, "text": text, "batch": batch.describe()}, client_id)
        except Exception:
            log.debug("could not send the refusal")
