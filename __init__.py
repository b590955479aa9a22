"""Batch Image Processing for ComfyUI: press Queue once, process a whole folder.

ComfyUI imports this file under a module name derived from the folder's path, so everything
inside the pack is imported relatively (ComfyUI has top-level `nodes` and `utils` modules).
"""

import sys

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"


def _register_routes() -> None:
    """The status/stop/reset routes, when loaded by a running ComfyUI (which has imported its
    `server` module by then); imported anywhere else (tests, tools), nothing is registered."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is not None:
        from .utils.batch.controller import controller
        from .utils.batch.http_routes import register

        register(instance.routes)
        controller().install_queue_hooks()


_register_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
