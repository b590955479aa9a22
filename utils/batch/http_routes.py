"""HTTP routes to watch and steer batches: /batch_image_processing/{status,stop,reset}.

Registered on ComfyUI's own route table, so they are served under /api/... as well. Handlers
run on the server's event loop: they only touch in-memory state and the queue, never wait
for a prompt.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .controller import controller

PREFIX = "/batch_image_processing"


def _bad_request(web: Any, message: str) -> Any:
    return web.json_response({"error": message}, status=400)


class Target(NamedTuple):
    """Which batches a stop or reset is for."""

    node_id: str | None  # None: every batch (stop {"all": true})
    workflow_id: str | None = None  # narrows node_id to one workflow's batch (the web extension sends it)
    all_servers: bool = False  # stop: a shared batch stops on every server taking part


async def _target_from(request: Any, web: Any, allow_all: bool) -> tuple[Target | None, Any]:
    """(target, None) or (None, error response) from a JSON body {"node_id": ..., "workflow_id": ...,
    "all_servers": true} or {"all": true}."""
    try:
        body = await request.json()
    except web.HTTPException:
        raise  # e.g. 413 for a body above the server's size limit
    except Exception:  # not JSON, not UTF-8, or nested too deeply for the parser (RecursionError)
        return None, _bad_request(web, 'send a JSON body such as {"node_id": "5"}')
    if not isinstance(body, dict):
        return None, _bad_request(web, 'send a JSON object such as {"node_id": "5"}')
    all_servers = body.get("all_servers", False)
    if not isinstance(all_servers, bool):
        return None, _bad_request(web, "all_servers must be true or false")
    if allow_all and body.get("all") is True:
        return Target(None, None, all_servers), None
    workflow_id = body.get("workflow_id")
    if workflow_id is not None and not isinstance(workflow_id, str):
        return None, _bad_request(web, "workflow_id must be a string")
    node_id = body.get("node_id")
    if isinstance(node_id, int) and not isinstance(node_id, bool):
        node_id = str(node_id)
    if not isinstance(node_id, str) or not node_id:
        wanted = '{"node_id": "5"} or {"all": true}' if allow_all else '{"node_id": "5"}'
        return None, _bad_request(web, f"missing node_id: send {wanted}")
    return Target(node_id, workflow_id or None, all_servers), None


def register(routes: Any) -> None:
    from aiohttp import web

    @routes.get(f"{PREFIX}/status")
    async def batch_status(request: web.Request) -> web.Response:
        return web.json_response({"batches": controller().status()})

    @routes.post(f"{PREFIX}/stop")
    async def batch_stop(request: web.Request) -> web.Response:
        target, error = await _target_from(request, web, allow_all=True)
        if target is None:
            return error
        try:
            stopped = controller().stop(*target)
        except KeyError:
            return web.json_response({"error": f"no batch known for node {target.node_id}"}, status=404)
        return web.json_response({"stopped": stopped})

    @routes.post(f"{PREFIX}/reset")
    async def batch_reset(request: web.Request) -> web.Response:
        target, error = await _target_from(request, web, allow_all=False)
        if target is None:
            return error
        try:
            forgotten = controller().reset(target.node_id, target.workflow_id)  # type: ignore[arg-type]
        except KeyError:
            return web.json_response({"error": f"no batch known for node {target.node_id}"}, status=404)
        return web.json_response({"reset": forgotten})
