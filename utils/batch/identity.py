"""Which workflow a loader belongs to: part of what makes two Queue presses "the same batch".

The browser embeds the workflow in every prompt (`extra_pnginfo.workflow`), with an `id` the
frontend keeps with the workflow (saved in its file, kept by Save As and by a template opened
twice). When two open tabs share one, the pack's web extension gives the tab being queued an id
of its own in the workflow's `extra`, which wins. So:
- a workflow from the browser is identified by that id: pressing Queue again on it, after a
  seed or any other widget changed, is the same batch;
- an API prompt without a workflow is identified by the shape of its graph: node ids, their
  types and their links. Widget values (seeds, prompts, model names) do not count, so a script
  that re-posts its prompt with a new seed resumes the same batch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Where the web extension keeps a workflow's own id when two open tabs share one graph id (newer
# frontends refuse to change the id of a graph that has nodes).
TAB_ID_KEY = "batch_image_processing_id"


def workflow_identity(extra_pnginfo: Any, prompt: Any) -> str:
    """A short, stable id of the workflow a prompt came from."""
    workflow = extra_pnginfo.get("workflow") if isinstance(extra_pnginfo, dict) else None
    if isinstance(workflow, dict):
        extra = workflow.get("extra")
        own = extra.get(TAB_ID_KEY) if isinstance(extra, dict) else None
        for wid in (own, workflow.get("id")):
            if isinstance(wid, str) and wid.strip():
                return wid.strip()
    return "api-" + graph_shape_digest(prompt)


def graph_shape_digest(prompt: Any) -> str:
    """Digest of an API prompt's nodes, their class types and links, without widget values."""
    shape = []
    if isinstance(prompt, dict):
        for node_id, node in prompt.items():
            if not isinstance(node, dict):
                continue
            inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
            links = sorted(
                (str(name), str(value[0]), str(value[1]))
                for name, value in inputs.items()
                if isinstance(value, list) and len(value) == 2
            )
            shape.append((str(node_id), str(node.get("class_type", "")), links))
    shape.sort()
    return hashlib.sha1(json.dumps(shape).encode("utf-8")).hexdigest()[:12]
