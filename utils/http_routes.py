"""HTTP routes to watch and steer batches: /batch_image_processing/{status,stop,reset}.

Registered on ComfyUI's own route table, so they are served under /api/... as well. Handlers
run on the server's event loop: they only touch in-memory state and the queue, never wait
for a prompt.
"""

from __future__ import annotations

from typing import Any

from .batch_controller import controller

PREFIX = "/batch_image_processing"


def _bad_request(web: Any, message: str) -> Any:
    return web.json_response({"error": message}, status=400)


async def _target_from(request: Any, web: Any, allow_all: bool) -> tuple[str | None, str | None, Any]:
    """(node_id or None for all, workflow_id or None, error response or None) from a JSON body
    {"node_id": ..., "workflow_id": ...} or {"all": true}. workflow_id narrows node_id to the
    batch of one workflow (the web extension sends it); without it every workflow's counts."""
    try:
        body = await request.json()
    except web.HTTPException:
        raise  # e.g. 413 for a body above the server's size limit
    except Exception:  # not JSON, not UTF-8, or nested too deeply for the parser (RecursionError)
        return None, None, _bad_request(web, 'send a JSON body such as {"node_id": "5"}')
    if not isinstance(body, dict):
        return None, None, _bad_request(web, 'send a JSON object such as {"node_id": "5"}')
    if allow_all and body.get("all") is True:
        return None, None, None
    workflow_id = body.get("workflow_id")
    if workflow_id is not None and not isinstance(workflow_id, str):
        return None, None, _bad_request(web, "workflow_id must be a string")
    node_id = body.get("node_id")
    if isinstance(node_id, int) and not isinstance(node_id, bool):
        node_id = str(node_id)
    if not isinstance(node_id, str) or not node_id:
        wanted = '{"node_id": "5"} or {"all": true}' if allow_all else '{"node_id": "5"}'
        return None, None, _bad_request(web, f"missing node_id: send {wanted}")
    return node_id, workflow_id or None, None


def register(routes: Any) -> None:
    from aiohttp import web

    @routes.get(f"{PREFIX}/status")
    async def batch_status(request: web.Request) -> web.Response:
        return web.json_response({"batches": controller().status()})

    @routes.post(f"{PREFIX}/stop")
    async def batch_stop(request: web.Request) -> web.Response:
        node_id, workflow_id, error = await _target_from(request, web, allow_all=True)
        if error is not None:
            return error
        try:
            stopped = controller().stop(node_id, workflow_id)
        except KeyError:
            return web.json_response({"error": f"no batch known for node {node_id}"}, status=404)
        return web.json_response({"stopped": stopped})

    @routes.post(f"{PREFIX}/reset")
    async def batch_reset(request: web.Request) -> web.Response:
        node_id, workflow_id, error = await _target_from(request, web, allow_all=False)
        if error is not None:
            return error
        try:
            forgotten = controller().reset(node_id, workflow_id)  # type: ignore[arg-type]
        except KeyError:
            return web.json_response({"error": f"no batch known for node {node_id}"}, status=404)
        return web.json_response({"reset": forgotten})
