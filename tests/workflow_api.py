"""Turn a saved (UI-format) workflow into the API prompt the browser would POST.

Enough of the frontend's graphToPrompt for the pack's example workflows: links, widget
values in INPUT_TYPES order (with the extra "control after generate" value of seed-like
inputs), bypassed/muted nodes left out. Used by the demo and by the tests that run every
example workflow, so the examples are proven to work against the node definitions.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _widget_names(spec: dict) -> list[tuple[str, bool]]:
    """(input name, has a control-after-generate value) of each widget, in order (a forceInput
    input is a socket only: the frontend gives it no widget and no widgets_values entry)."""
    names = []
    for section in ("required", "optional"):
        for name, conf in (spec["input"].get(section) or {}).items():
            kind, opts = conf[0], (conf[1] if len(conf) > 1 else {}) or {}
            if (isinstance(kind, list) or kind in WIDGET_TYPES) and not opts.get("forceInput"):
                control = bool(opts.get("control_after_generate")) or name in ("seed", "noise_seed")
                names.append((name, control))
    return names


def to_api(workflow: dict, object_info: dict) -> dict[str, Any]:
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        spec = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        for name, control in _widget_names(spec):
            if values:
                inputs[name] = values.pop(0)
                if control and values:
                    values.pop(0)
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def set_widget(workflow: dict, node_type: str, name: str, value: Any, object_info: dict) -> None:
    """Set a widget value on every node of node_type, as typing into the widget would."""
    order = [n for n, _ in _widget_names(object_info[node_type])]
    for node in workflow["nodes"]:
        if node["type"] == node_type:
            node["widgets_values"][order.index(name)] = value
