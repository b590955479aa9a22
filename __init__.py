"""Batch Image Processing for ComfyUI: press Queue once, process a whole folder.

ComfyUI imports this file under a module name derived from the folder's path, so everything
inside the pack is imported relatively (ComfyUI has top-level `nodes` and `utils` modules).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
