"""Turn what a user typed into a folder path (quotes, ~, relative to a ComfyUI folder)."""

from __future__ import annotations

import os


def clean_user_path(raw: str) -> str:
    """Strip whitespace and the quotes a copied Windows path often carries; expand ~."""
    text = (raw or "").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return os.path.expanduser(text) if text else ""


def resolve_folder(raw: str, base: str) -> str:
    """Absolute, normalised folder: raw as given when absolute, else inside base."""
    text = clean_user_path(raw)
    path = text if os.path.isabs(text) else os.path.join(base, text)
    return os.path.normpath(os.path.abspath(path))
