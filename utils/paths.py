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


class FolderError(ValueError):
    """A folder input cannot be used; the message names the input and says what to do."""


def resolve_output_folder(raw: str, base: str, input_name: str = "output_directory") -> str:
    """resolve_folder for a place to write: a relative path must stay inside base (ComfyUI's
    output folder); an absolute one may be anywhere; neither may be an existing file."""
    if "\x00" in (raw or ""):
        raise FolderError(f"{input_name} contains a NUL character (\\x00), which no file system allows: remove it.")
    folder = resolve_folder(raw, base)
    text = clean_user_path(raw)
    if not os.path.isabs(text):
        root = os.path.normpath(os.path.abspath(base))
        if os.path.commonpath([folder, root]) != root:
            raise FolderError(
                f"{input_name} {text!r} leads out of ComfyUI's output folder '{root}' (to '{folder}'): a relative "
                "path must stay inside it. Remove the '..', or give an absolute path."
            )
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise FolderError(f"{input_name} '{folder}' is a file, not a folder: choose a folder, or move that file away.")
    return folder


def blocking_file(folder: str) -> str | None:
    """The existing file (not a folder) on the way to folder that makes creating it fail, if any."""
    path = folder
    while path and not os.path.isdir(path):
        if os.path.lexists(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return None
