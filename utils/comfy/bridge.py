"""Every touch of ComfyUI's internals in one place, imported lazily.

The rest of the pack stays importable (and unit-testable) without a ComfyUI around it, and a
change between ComfyUI releases has one file to fix.
"""

from __future__ import annotations

import collections
import copy
import json
import time
from collections.abc import Callable
from typing import Any

from .. import log
from .queue_control import PromptTemplate, template_from_hidden_inputs, template_from_queue_item
from .server_url import base_url

NOT_FINISHED = object()
# Outcomes of finished prompts as the queue's task_done reported them (see hook_task_done): what
# "finished" means when a prompt's history entry is gone (Clear history, the history size limit).
_outcomes: collections.OrderedDict[str, Any] = collections.OrderedDict()
_OUTCOMES_KEPT = 20_000
# Called (no arguments, on ComfyUI's prompt worker thread) right after each prompt's task_done, once
# its history entry is written: the watcher then looks at once instead of polling (prompt_watcher).
_finish_listeners: list[Callable[[], None]] = []
_task_done_hooked = False


def _server() -> Any:
    from server import PromptServer  # ComfyUI's server module

    return PromptServer.instance


def _queue() -> Any:
    return _server().prompt_queue


def current_prompt_id() -> str | None:
    """Id of the prompt being executed (context var on new releases, last_prompt_id on all)."""
    try:
        from comfy_execution.utils import get_executing_context

        ctx = get_executing_context()
        if ctx is not None and ctx.prompt_id:
            return ctx.prompt_id
    except ImportError:
        pass
    return getattr(_server(), "last_prompt_id", None)


def current_client_id() -> str | None:
    return getattr(_server(), "client_id", None)


def _queue_snapshot() -> tuple[list, list]:
    """(running items, pending items); the cheap shallow copy where this ComfyUI has it."""
    queue = _queue()
    return getattr(queue, "get_current_queue_volatile", queue.get_current_queue)()


def running_item(prompt_id: str) -> tuple | None:
    """The running queue item of prompt_id: a copy taken before execution mutated the prompt."""
    running, _ = _queue_snapshot()
    for item in running:
        if item[1] == prompt_id:
            return item
    return None


def prompt_created_and_client(prompt_id: str) -> tuple[float, str | None]:
    """(when it was queued, in seconds since the epoch; its client_id) of a running prompt.
    Without a create_time (very old ComfyUI), "now"."""
    item = running_item(prompt_id)
    extra = item[3] if item is not None and len(item) > 3 and isinstance(item[3], dict) else {}
    created = extra.get("create_time")
    when = created / 1000 if isinstance(created, (int, float)) else time.time()
    return when, extra.get("client_id", current_client_id())


def prompt_template(prompt_id: str, prompt: dict | None, extra_pnginfo: dict | None) -> PromptTemplate | None:
    """What to re-POST for the next image: the running queue item (a clean copy taken before
    execution mutated the prompt), else the hidden PROMPT / EXTRA_PNGINFO inputs."""
    item = running_item(prompt_id)
    if item is not None:
        return template_from_queue_item(item)
    if prompt:
        return template_from_hidden_inputs(prompt, extra_pnginfo, current_client_id())
    return None


def queued_prompt_ids() -> tuple[set[str], set[str]]:
    """(running ids, pending ids)."""
    running, pending = _queue_snapshot()
    return {item[1] for item in running}, {item[1] for item in pending}


def finished_status(prompt_id: str) -> Any:
    """The status dict of a finished prompt (from history, else from the pack's own record of
    task_done), or NOT_FINISHED while it has not finished."""
    found = _queue().get_history(prompt_id=prompt_id, map_function=lambda entry: copy.deepcopy(entry.get("status")))
    if prompt_id in found:
        return found[prompt_id]
    return copy.deepcopy(_outcomes[prompt_id]) if prompt_id in _outcomes else NOT_FINISHED


def add_finish_listener(listener: Callable[[], None]) -> None:
    """Have listener called each time a prompt has finished (see hook_task_done)."""
    _finish_listeners.append(listener)


def finish_signalled() -> bool:
    """Whether the finish listeners are called: task_done is hooked."""
    return _task_done_hooked


def hook_task_done() -> bool:
    """Keep our own record of every prompt's outcome: wrap the queue's task_done, which ComfyUI's
    prompt worker calls once per finished prompt (0.3.75 to 0.33). History is the user's to clear;
    a prompt that ran must still count as finished, once. The finish listeners are called after it.
    False when the hook is not possible."""
    global _task_done_hooked
    queue = _queue()
    original = getattr(queue, "task_done", None)
    if original is None or getattr(original, "_bip_hooked", False):
        # Hooked already: by this module (its listeners are called), or by another copy of the pack.
        _task_done_hooked = getattr(original, "_bip_listeners", None) is _finish_listeners
        return original is not None

    def task_done(item_id: Any, history_result: Any, status: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            item = queue.currently_running.get(item_id)
            if item is not None:
                _outcomes[item[1]] = status._asdict() if hasattr(status, "_asdict") else status
                while len(_outcomes) > _OUTCOMES_KEPT:
                    _outcomes.popitem(last=False)
        except Exception:  # never break ComfyUI's worker
            log.exception("recording a prompt's outcome failed")
        try:
            return original(item_id, history_result, status, *args, **kwargs)
        finally:
            for listener in _finish_listeners:
                try:
                    listener()
                except Exception:
                    log.exception("a prompt-finished listener failed")

    task_done._bip_hooked = True  # type: ignore[attr-defined]
    task_done._bip_listeners = _finish_listeners  # type: ignore[attr-defined]
    queue.task_done = task_done
    _task_done_hooked = True
    return True


def interrupt_pending() -> bool:
    """True while an interrupt is set that no node has taken: one that came after the prompt's
    last node checked for it. ComfyUI finishes that prompt as a success and clears the flag when
    the next prompt starts. (A Cancel over HTTP is seen by the queue hooks; this catches one
    made inside the process, e.g. by another extension.)"""
    import comfy.model_management as mm

    return bool(mm.processing_interrupted())


def delete_pending(prompt_id: str) -> bool:
    return bool(_queue().delete_queue_item(lambda item: item[1] == prompt_id))


def send_event(event: str, data: dict, client_id: str | None) -> None:
    """Send a websocket event to one client (None: every client). Safe from the worker thread."""
    _server().send_sync(event, data, client_id)


def own_url() -> str:
    """Base URL of this very server, from what it is really bound to."""
    from comfy.cli_args import args

    server = _server()
    address = getattr(server, "address", None) or args.listen
    port = getattr(server, "port", None) or args.port
    tls = bool(getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None))
    return base_url(address, int(port), tls)


def user_directory() -> str:
    import folder_paths

    return folder_paths.get_user_directory()


def input_directory() -> str:
    import folder_paths

    return folder_paths.get_input_directory()


def output_directory() -> str:
    import folder_paths

    return folder_paths.get_output_directory()


def temp_directory() -> str:
    import folder_paths

    return folder_paths.get_temp_directory()


def metadata_disabled() -> bool:
    from comfy.cli_args import args

    return bool(getattr(args, "disable_metadata", False))


def execution_blocker() -> Any:
    """A silent ExecutionBlocker: downstream nodes of this output simply do not run."""
    from comfy_execution.graph_utils import ExecutionBlocker

    return ExecutionBlocker(None)


def tensor_target() -> tuple[Any, Any]:
    """(device, dtype) of ComfyUI's tensor path: intermediate_device/dtype where they exist."""
    import comfy.model_management as mm
    import torch

    device = mm.intermediate_device()
    dtype = mm.intermediate_dtype() if hasattr(mm, "intermediate_dtype") else torch.float32
    return device, dtype


# POST routes whose requests stop batches: (path, kind). The job routes exist on 0.33+ only.
_QUEUE_ROUTES = {
    "/interrupt": "interrupt",
    "/queue": "queue",
    "/api/jobs/{job_id}/cancel": "cancel_jobs",
    "/api/jobs/cancel": "cancel_jobs",
}


def hook_queue_requests(on_request: Callable[[str, dict], None]) -> int:
    """Call on_request(kind, body) before ComfyUI's own Cancel / queue / job-cancel handlers run.

    ComfyUI registers its routes on PromptServer.instance.routes when the server object is
    built and adds them to the web app (also under /api) only after custom nodes are imported,
    so a handler replaced here at import time is the one served. Returns how many were hooked.
    """
    from aiohttp import web

    items = getattr(_server().routes, "_items", None)
    hooked = 0
    for i, route in enumerate(items if isinstance(items, list) else []):
        kind = _QUEUE_ROUTES.get(route.path) if isinstance(route, web.RouteDef) and route.method == "POST" else None
        if kind is not None:
            items[i] = web.RouteDef(route.method, route.path, _hooked(route.handler, kind, on_request), route.kwargs)
            hooked += 1
    if hooked < 2:
        log.warning("could not hook ComfyUI's /interrupt and /queue routes: a Cancel between two images "
                    "may be missed (the batch then stops after its next image)")
    return hooked


def _hooked(handler: Callable, kind: str, on_request: Callable[[str, dict], None]) -> Callable:
    async def hooked_handler(request: Any) -> Any:
        # Act only on what ComfyUI's own handler accepts: /interrupt reads a body that is not JSON
        # as {} (a global interrupt); anything else it cannot read answers 500 and changes nothing.
        body: Any = None
        if "job_id" in request.match_info:
            body = {"job_ids": [request.match_info["job_id"]]}
        else:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                body = {} if kind == "interrupt" else None
            except Exception:  # not UTF-8, nested too deep, too large: ComfyUI's handler fails too
                body = None
        if isinstance(body, dict):
            try:
                on_request(kind, body)
            except Exception:
                log.exception("handling %s %s failed", request.method, request.path)
        return await handler(request)

    return hooked_handler
