"""Which batches a user's Cancel, Clear queue or queue deletion stops.

ComfyUI forgets an interrupt that lands between two prompts (it resets the flag when the next
prompt starts, and skips a prompt_id that no longer runs), and a batch has at most one prompt
in the queue, so these requests are read before ComfyUI acts on them:
- Cancel with a prompt id (the frontend's Cancel, /api/jobs/.../cancel on new releases) stops
  the batch that prompt belongs to, also when it has just finished;
- a bare interrupt (also an empty prompt_id, as ComfyUI reads it) stops every batch that is
  going, unless a prompt of no batch is running (then the interrupt is meant for that prompt);
- Clear queue stops every batch that is going;
- deleting a batch's queued next image stops that batch.
In each case at most the image already started completes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..comfy import bridge
from .batch import QUEUED, STOP_CANCEL, STOP_CLEAR, STOP_REMOVED, Batch
from .identity import workflow_identity


def _ids(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if value else set()
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str) and v}
    return set()


def batches_to_stop(kind: str, body: dict, going: Iterable[Batch], running: set[str]) -> list[tuple[Batch, str]]:
    """(batch, reason) for each going batch that the request stops.

    kind: "interrupt" (POST /interrupt), "queue" (POST /queue) or "cancel_jobs" (job cancel
    routes, body {"job_ids": [...]}); running: ids of the prompts running now.
    """
    going = list(going)
    if kind == "interrupt":
        if body.get("prompt_id"):  # ComfyUI: a targeted interrupt (an id that is not a string matches nothing)
            wanted = _ids(body.get("prompt_id"))
            return [(b, STOP_CANCEL) for b in going if wanted & set(b.recent_prompts)]
        ours = set().union(*(b.recent_prompts for b in going))  # their prompts and the presses they refused
        if running - ours:
            return []
        return [(b, STOP_CANCEL) for b in going]
    if kind == "cancel_jobs":
        wanted = _ids(body.get("job_ids"))
        return [(b, STOP_CANCEL) for b in going if wanted & set(b.recent_prompts)]
    if kind == "queue":
        if body.get("clear"):
            return [(b, STOP_CLEAR) for b in going]
        deleted = _ids(body.get("delete"))  # ComfyUI deletes pending prompts only
        return [(b, STOP_REMOVED) for b in going if b.phase == QUEUED and b.prompt_id in deleted]
    return []


def adopt_presses(running: set[str], going: list[Batch]) -> None:
    """A running press of a going batch's workflow whose loader has not run yet (other nodes run
    first) is that batch's too: a Cancel aimed at it stops the batch."""
    for prompt_id in running - set().union(*(b.recent_prompts for b in going)):
        item = bridge.running_item(prompt_id)
        if item is None or not isinstance(item[2], dict):
            continue
        extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
        workflow = workflow_identity(extra.get("extra_pnginfo"), item[2])
        loaders = {str(n) for n, node in item[2].items()
                   if isinstance(node, dict) and node.get("class_type") == "BatchImageLoader"}
        for batch in going:
            if batch.settings.workflow_id == workflow and batch.settings.node_id in loaders:
                batch.recent_prompts.append(prompt_id)
