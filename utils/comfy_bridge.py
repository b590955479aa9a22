"""Every touch of ComfyUI's internals in one place, imported lazily.

The rest of the pack stays importable (and unit-testable) without a ComfyUI around it, and a
change between ComfyUI releases has one file to fix.
"""

from __future__ import annotations

import copy
from typing import Any

from .server_url import base_url

NOT_FINISHED = object()


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


def queued_prompt_ids() -> tuple[set[str], set[str]]:
    """(running ids, pending ids)."""
    running, pending = _queue_snapshot()
    return {item[1] for item in running}, {item[1] for item in pending}


def finished_status(prompt_id: str) -> Any:
    """The history status dict of a finished prompt, or NOT_FINISHED while it is not in history."""
    found = _queue().get_history(prompt_id=prompt_id, map_function=lambda entry: copy.deepcopy(entry.get("status")))
    return found[prompt_id] if prompt_id in found else NOT_FINISHED


def interrupt_pending() -> bool:
    """True while an interrupt (Cancel) is set that no node has taken: one that arrived after the
    prompt's last node checked for it. ComfyUI finishes that prompt as a success and clears the
    request when the next prompt starts, so a batch must notice it between the two."""
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
