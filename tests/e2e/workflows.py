"""API-format prompts the end-to-end tests queue, as the browser would send them."""

from __future__ import annotations

from typing import Any


def loader_node(directory: str, **inputs: Any) -> dict:
    base = {
        "directory": directory,
        "filter_preset": "All Images",
        "iteration_mode": "Continue",
        "error_handling": "Stop on error",
    }
    base.update(inputs)
    return {"class_type": "BatchImageLoader", "inputs": base}


def slow_or_failing(prompt: dict[str, Any], sleep: float, fail_if_contains: str) -> list:
    """After loader "1"'s IMAGE: (sleep seconds, node 10) -> (fail when its FILENAME contains
    fail_if_contains, node 11); the output the rest of the workflow takes."""
    image_src: list = ["1", 0]
    if sleep:
        prompt["10"] = {"class_type": "BIPTestSleep", "inputs": {"images": image_src, "seconds": sleep}}
        image_src = ["10", 0]
    if fail_if_contains:
        prompt["11"] = {"class_type": "BIPTestFailOn",
                        "inputs": {"images": image_src, "name": ["1", 2], "fail_if_contains": fail_if_contains}}
        image_src = ["11", 0]
    return image_src


def loader_to_saveimage(directory: str, subfolder: str, sleep: float = 0.0,
                        fail_if_contains: str = "", **loader_inputs: Any) -> dict:
    """loader -> (sleep) -> (fail on name) -> ImageInvert -> SaveImage named '<subfolder>/<BASE_NAME>'."""
    prompt: dict[str, Any] = {"1": loader_node(directory, **loader_inputs)}
    image_src = slow_or_failing(prompt, sleep, fail_if_contains)
    prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": image_src}}
    prompt["3"] = {"class_type": "StringConcatenate",
                   "inputs": {"string_a": f"{subfolder}/", "string_b": ["1", 3], "delimiter": ""}}
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": ["3", 0]}}
    return prompt


def saver_node(images: list, output_directory: str, **inputs: Any) -> dict:
    base = {"images": images, "output_directory": output_directory, "filename": ["1", 2],
            "relative_path": ["1", 4]}
    base.update(inputs)
    return {"class_type": "BatchImageSaver", "inputs": base}


def loader_to_saver(directory: str, output_directory: str, loader: dict | None = None, **saver: Any) -> dict:
    """loader -> ImageInvert -> Batch Image Saver (FILENAME and RELATIVE_PATH linked)."""
    return {
        "1": loader_node(directory, **(loader or {})),
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": saver_node(["2", 0], output_directory, **saver),
    }
