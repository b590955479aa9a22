"""Queue the next image of a batch by POSTing the prompt to ComfyUI's own /prompt route.

Going through HTTP (not prompt_queue.put) keeps ComfyUI's validation, its on_prompt hooks
and its queue numbering, exactly as if the browser had queued the prompt.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import log
from .server_url import loopback_ssl_context

# extra_data keys that ComfyUI sets itself on every POST; everything else is carried over.
_SERVER_SET_KEYS = ("client_id", "create_time")


class QueueError(RuntimeError):
    """The next prompt could not be queued; the message says why, for the user."""


@dataclass
class PromptTemplate:
    """What a continuation prompt is built from: the running prompt as the user queued it."""

    prompt: dict
    client_id: str | None = None
    extra_data: dict = field(default_factory=dict)
    outputs: list[str] | None = None


def strip_is_changed(prompt: dict) -> dict:
    """Deep copy of an API prompt without the `is_changed` keys execution adds to nodes.

    Re-posting them makes ComfyUI reuse the stored value: the loader is then cached and the
    chain silently stops.
    """
    clean = copy.deepcopy(prompt)
    for node in clean.values():
        if isinstance(node, dict):
            node.pop("is_changed", None)
    return clean


def template_from_queue_item(item: tuple | list) -> PromptTemplate:
    """Template from a running queue item (number, prompt_id, prompt, extra_data, outputs[, sensitive])."""
    extra = dict(item[3] or {})
    client_id = extra.get("client_id")
    for key in _SERVER_SET_KEYS:
        extra.pop(key, None)
    if len(item) > 5 and isinstance(item[5], dict):
        extra.update(item[5])  # API-node auth keys; the server moves them back out of extra_data
    outputs = list(item[4]) if len(item) > 4 and item[4] is not None else None
    return PromptTemplate(strip_is_changed(item[2]), client_id, copy.deepcopy(extra), outputs)


def template_from_hidden_inputs(prompt: dict, extra_pnginfo: dict | None, client_id: str | None) -> PromptTemplate:
    """Fallback when the queue item cannot be read: the hidden PROMPT/EXTRA_PNGINFO inputs."""
    extra = {"extra_pnginfo": copy.deepcopy(extra_pnginfo)} if extra_pnginfo is not None else {}
    return PromptTemplate(strip_is_changed(prompt), client_id, extra, None)


def build_payload(template: PromptTemplate, prompt_id: str | None = None) -> dict[str, Any]:
    """The /prompt body of one continuation; prompt_id is a fresh canonical UUID."""
    payload: dict[str, Any] = {
        "prompt": template.prompt,
        "extra_data": template.extra_data,
        "prompt_id": prompt_id or str(uuid.uuid4()),
    }
    if template.client_id is not None:
        payload["client_id"] = template.client_id
    if template.outputs is not None:
        payload["partial_execution_targets"] = template.outputs
    return payload


def describe_rejection(body: bytes) -> str:
    """Human-readable summary of a 400 from /prompt, naming the nodes and their errors."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return body.decode("utf-8", "replace")[:500]
    parts = []
    err = data.get("error") or {}
    if isinstance(err, dict) and err.get("message"):
        parts.append(str(err["message"]) + (f": {err['details']}" if err.get("details") else ""))
    node_errors = describe_node_errors(data.get("node_errors"))
    return " | ".join([*parts, node_errors] if node_errors else parts) or "no details"


def describe_node_errors(node_errors: object) -> str:
    """'node 5 (LoadImage): Invalid image file ...' for each node ComfyUI's validation refused."""
    if not isinstance(node_errors, dict):
        return ""
    parts = []
    for node_id, node_err in node_errors.items():
        cls = node_err.get("class_type", "?")
        msgs = "; ".join(
            f"{e.get('message', '')} {e.get('details', '')}".strip() for e in node_err.get("errors", [])
        )
        parts.append(f"node {node_id} ({cls}): {msgs}")
    return " | ".join(parts)


def post_prompt(
    url: str,
    payload: dict,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """POST payload to url (…/prompt); retries connection errors, raises QueueError otherwise.

    No Origin header is sent: ComfyUI's origin check only rejects requests that carry one.
    """
    data = json.dumps(payload).encode("utf-8")
    context = loopback_ssl_context() if url.startswith("https:") else None
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            if exc.code == 400:
                raise QueueError(f"ComfyUI rejected the next prompt: {describe_rejection(body)}") from None
            last_error = QueueError(f"ComfyUI answered HTTP {exc.code} to {url}: {body[:300]!r}")
            if exc.code < 500:
                raise last_error from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = exc
        if attempt < retries:
            log.warning("queueing the next image failed (%s); retrying", last_error)
            sleep(backoff * (2**attempt))
    raise QueueError(f"Could not reach ComfyUI at {url} after {retries + 1} tries: {last_error}")
