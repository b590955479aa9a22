"""Batch Image Processing for ComfyUI: press Queue once, process a whole folder.

ComfyUI imports this file under a module name derived from the folder's path, so everything
inside the pack is imported relatively (ComfyUI has top-level `nodes` and `utils` modules).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"


def _register_routes() -> None:
    """The status/stop/reset routes, when loaded inside a running ComfyUI server."""
    try:
        from server import PromptServer
    except ImportError:  # imported outside ComfyUI (unit tests, tools)
        return
    if getattr(PromptServer, "instance", None) is not None:
        from .utils.http_routes import register

        register(PromptServer.instance.routes)


_register_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
