"""Every example workflow in example_workflows/ runs as shipped (with its folder pointed at test images)."""

from __future__ import annotations

import json
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from harness import REPO_ROOT, ComfyClient
from PIL import Image
from workflow_api import set_widget, to_api

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))


def test_examples_have_thumbnails_and_are_listed_as_templates(client: ComfyClient) -> None:
    assert EXAMPLES, "no example workflows"
    for path in EXAMPLES:
        assert path.with_suffix(".jpg").is_file(), f"{path.name} has no thumbnail"
    templates = client.get("/api/workflow_templates")
    listed = next(v for k, v in templates.items() if "batch-image-processing" in k)
    assert sorted(listed) == sorted(p.stem for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_workflow_runs(client: ComfyClient, input_folder: Path, tmp_path: Path, path: Path) -> None:
    (input_folder / "sub").mkdir()
    img.write_rgba_png(input_folder / "a.png")
    img.write_solid(input_folder / "sub" / "b.jpg", (10, 20, 30))
    info = client.get("/object_info")
    workflow = json.loads(path.read_text())
    set_widget(workflow, "BatchImageLoader", "directory", str(input_folder), info)
    masks = tmp_path / "masks"
    for node in workflow["nodes"]:  # a mask for each image, where the companion loader looks
        if node["type"] == "BatchCompanionLoader":
            set_widget(workflow, "BatchCompanionLoader", "folder", str(masks), info)
            pattern = node["widgets_values"][1]
            (masks / "sub").mkdir(parents=True)
            Image.new("L", (8, 6), 255).save(masks / pattern.replace("{name}", "a"))
            Image.new("L", (8, 8), 0).save(masks / "sub" / pattern.replace("{name}", "b"))
    out = tmp_path / "out"
    for node in workflow["nodes"]:  # each saver's relative output folder, moved under tmp_path
        if node["type"] in ("BatchImageSaver", "BatchTextSaver") and node["widgets_values"][0]:
            node["widgets_values"][0] = str(out / node["widgets_values"][0])
    client.queue_prompt(to_api(workflow, info), workflow=workflow)
    client.wait_idle()
    saved = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert len(saved) >= 2, saved
    assert any("/sub/" in s for s in saved), "subfolders are mirrored"
    if masks.exists():  # the composite takes the result where a's mask is white, the image where b's is black
        result = [np.asarray(Image.open(out / s).convert("RGB"))[0, 0].astype(int) for s in saved]
        assert np.abs(result[0] - [55, 155, 205]).max() <= 2, result  # a.png (200, 100, 50), inverted
        assert np.abs(result[1] - [10, 20, 30]).max() <= 6, result  # sub/b.jpg as loaded
    if any(node["type"] == "BatchTextSaver" for node in workflow["nodes"]):  # a caption beside each image
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*.txt")) == [s[:-4] + ".txt" for s in saved]
