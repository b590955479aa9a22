"""Which node an input of a node is linked to, read from the prompt (the hidden PROMPT input).

The savers and the companion loader find the loader run they belong to by this link first: two
loaders of one workflow may load files of the same names, and a typed or renamed value says
nothing about where the image came from.
"""

from __future__ import annotations

from typing import Any


def link_source(prompt: dict | None, unique_id: Any, name: str) -> str | None:
    """The id of the node that node unique_id's input name is linked to; None for a typed value."""
    node = prompt.get(str(unique_id)) if isinstance(prompt, dict) else None
    inputs = node.get("inputs") if isinstance(node, dict) else None
    value = inputs.get(name) if isinstance(inputs, dict) else None
    return str(value[0]) if isinstance(value, list) and value else None


def loader_link(prompt: dict | None, unique_id: Any, *names: str) -> str | None:
    """The node the first linked input of names comes from (the loader, when linked directly)."""
    return next((src for name in names if (src := link_source(prompt, unique_id, name)) is not None), None)
