"""The `ui.images` entry that makes ComfyUI show a saved file on the node.

ComfyUI's /view serves only its input, output and temp folders, and browsers do not show
TIFF: for anything else a small PNG preview goes to the temp folder (wiped at every start).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
from PIL import Image

from . import bridge

PREVIEW_MAX_SIDE = 1024
_BROWSER_FORMATS = (".png", ".jpg", ".jpeg", ".webp")


def preview_entry(saved_path: str, pixels: np.ndarray) -> dict[str, str]:
    output_root = os.path.realpath(bridge.output_directory())
    real = os.path.realpath(saved_path)
    inside = os.path.commonpath([real, output_root]) == output_root
    if inside and os.path.splitext(real)[1].lower() in _BROWSER_FORMATS:
        subfolder = os.path.relpath(os.path.dirname(real), output_root)
        return {"filename": os.path.basename(real), "subfolder": "" if subfolder == "." else subfolder,
                "type": "output"}
    return _temp_preview(pixels)


def _temp_preview(pixels: np.ndarray) -> dict[str, str]:
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    img = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    img.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    temp_dir = bridge.temp_directory()
    os.makedirs(temp_dir, exist_ok=True)
    name = f"batch_preview_{uuid.uuid4().hex[:12]}.png"
    img.save(os.path.join(temp_dir, name), compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}
