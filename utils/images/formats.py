"""Optional image formats: HEIC/HEIF through pillow-heif and JPEG XL through pillow-jxl-plugin.

Neither ships with ComfyUI: each is registered with Pillow only when it can be imported, never
required. A file that needs a missing one is an unreadable image whose message says what to
install, with the exact pip command for the Python running ComfyUI.
"""

from __future__ import annotations

import os
import sys

# extension -> (format name, package on PyPI)
PLUGIN_FORMATS = {
    ".heic": ("HEIC/HEIF", "pillow-heif"),
    ".heif": ("HEIC/HEIF", "pillow-heif"),
    ".jxl": ("JPEG XL", "pillow-jxl-plugin"),
}
_registered: set[str] = set()


def register_plugins() -> None:
    """Register the optional Pillow plugins that are installed (called once, at import)."""
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _registered.add("pillow-heif")
    except (ImportError, OSError, AttributeError):
        pass
    try:
        import pillow_jxl  # noqa: F401  (importing it registers the JPEG XL plugin)

        _registered.add("pillow-jxl-plugin")
    except (ImportError, OSError):
        pass


def missing_plugin(path: str) -> str | None:
    """Why path cannot be read when its format needs a plugin that is not installed; else None."""
    found = PLUGIN_FORMATS.get(os.path.splitext(path)[1].lower())
    if found is None or found[1] in _registered:
        return None
    name, package = found
    return (f"{name} images need the Python package '{package}', which is not installed in ComfyUI's Python. "
            f'Install it with: "{sys.executable}" -m pip install {package}  then restart ComfyUI')


register_plugins()
