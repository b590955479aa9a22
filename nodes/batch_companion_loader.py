"""Batch Companion Loader: the mask, control image or caption that belongs to the loader's image,
found by name (never by position), from another folder or the image's own."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..utils import log
from ..utils.batch.controller import controller
from ..utils.batch.prompt_runs import RunInput
from ..utils.comfy import bridge
from ..utils.companions.finding import CompanionError, companion_root, find_companion, looked_for
from ..utils.companions.pattern import DEFAULT_PATTERN, NamePattern, PatternError
from ..utils.companions.pixels import companion_tensors, empty_tensors, image_size
from ..utils.companions.text import TEXT_EXTENSIONS, read_text
from ..utils.images.decode import DecodeError
from ..utils.log import printable
from .prompt_links import loader_link

FOLLOW, EMPTY = "Follow error_handling", "Empty"
UNKNOWN_SIZE = (64, 64)  # core LoadImage's stand-in mask, when no loader tells the image's size

OUTPUTS = (
    ("IMAGE", "IMAGE", "The companion image (pixel values as stored, no colour conversion). Black, of the "
                       "image's size, when the companion is a text file or missing (if_missing Empty)."),
    ("MASK", "MASK", "From the companion image: 1 - alpha when it has transparency, else its brightness (a "
                     "black-and-white mask file as it is: white = 1). All zeros, of the image's size, when missing."),
    ("STRING", "TEXT", "The companion's text when it is a text file (.txt, .caption, .tags, .json, ...): UTF-8, "
                       "a byte order mark removed, line ends as \\n. Empty otherwise. A list: one text per image."),
    ("BOOLEAN", "FOUND", "True when the companion file was found."),
    ("STRING", "PATH", "Absolute path of the companion file; empty when it was not found (one line per image "
                       "for a run of several)."),
)


@dataclass
class _Match:
    """One input image of the run and its companion file (None: missing)."""

    source: RunInput | None
    label: str  # the image, for messages
    wanted: str  # what was looked for
    path: str | None


def current_inputs(relative_path: str, base_name: str, loader_node: str | None = None) -> list[RunInput]:
    """The run's input images of the loader node loader_node (the one BASE_NAME is linked to), else
    those that RELATIVE_PATH and BASE_NAME describe (a loader's first image), in the order of that
    loader's IMAGE batch; [] when no Batch Image Loader of this prompt loaded it."""
    loaders = controller().loader_inputs()
    if loader_node in loaders:
        return loaders[loader_node]
    rel_dir = "/".join(p for p in (relative_path or "").replace("\\", "/").split("/") if p)
    for inputs in loaders.values():
        folder, _, filename = inputs[0].rel_path.rpartition("/") if inputs else ("", "", "")
        if inputs and folder == rel_dir and os.path.splitext(filename)[0] == base_name:
            return inputs
    return []


def _match(source: RunInput | None, relative_path: str, base_name: str, root: str | None,
           pattern: NamePattern) -> _Match:
    if source is None:  # not from a Batch Image Loader of this prompt: only the strings are known
        assert root is not None
        rel_dir, name, image, label = relative_path, base_name, None, f"{relative_path}/{base_name}".lstrip("/")
    else:
        rel_dir, _, filename = source.rel_path.rpartition("/")
        name, image, label = os.path.splitext(filename)[0], source.full_path, source.rel_path
        if root is None:  # the image's own folder
            root, rel_dir = os.path.dirname(source.full_path), ""
    return _Match(source, label, looked_for(root, rel_dir, name, pattern),
                  find_companion(root, rel_dir, name, pattern, image))


def _tensors(match: _Match, text_file: bool, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if match.path is not None and not text_file:
        return companion_tensors(match.path, device, dtype)
    size = image_size(match.source.full_path) if match.source is not None else UNKNOWN_SIZE
    return empty_tensors(size, device, dtype)


def _one_batch(tensors: list[torch.Tensor], matches: list[_Match]) -> torch.Tensor:
    sizes = {tuple(t.shape[1:3]) for t in tensors}
    if len(sizes) > 1:
        listed = ", ".join(f"'{printable(m.path or m.wanted)}' {t.shape[2]}x{t.shape[1]}"
                           for m, t in zip(matches, tensors, strict=True))
        raise CompanionError(f"the companions of one run differ in size ({listed}): they cannot form one batch. "
                             "Make them the same size, or set images_per_run to 1.")
    return torch.cat(tensors)


class BatchCompanionLoader:
    """Loads the file that goes with the current image of Batch Image Loader, found by name."""

    CATEGORY = "image/batch"
    SEARCH_ALIASES: ClassVar[list[str]] = [
        "mask", "caption", "pair", "sidecar", "txt", "companion", "mask folder", "load mask", "load caption",
        "control image", "depth map", "matching file", "same name", "paired images",
    ]
    DESCRIPTION = (
        "Loads the mask, control image or caption that belongs to Batch Image Loader's current image, found by "
        "name in another folder (or the image's own): link RELATIVE_PATH and BASE_NAME from the loader. One "
        "missing or extra file never shifts the pairs. A missing companion stops or skips the image as the "
        "loader's error_handling says, or gives an empty stand-in."
    )
    RETURN_TYPES = tuple(o[0] for o in OUTPUTS)
    RETURN_NAMES = tuple(o[1] for o in OUTPUTS)
    OUTPUT_TOOLTIPS = tuple(o[2] for o in OUTPUTS)
    OUTPUT_IS_LIST = (False, False, True, False, False)  # one text per image (Batch Text Saver takes the list)
    FUNCTION = "load_companion"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "relative_path": ("STRING", {
                    "forceInput": True,
                    "tooltip": "Link Batch Image Loader's RELATIVE_PATH: the image's subfolder, mirrored under folder.",
                }),
                "base_name": ("STRING", {
                    "forceInput": True,
                    "tooltip": "Link Batch Image Loader's BASE_NAME: the image's file name without extension.",
                }),
                "folder": ("STRING", {
                    "default": "",
                    "tooltip": "Folder of the companion files (masks, control images, captions): an absolute path, "
                    "or a path relative to ComfyUI's input folder; the image's subfolders are mirrored inside it. "
                    "Empty: the image's own folder (the image itself never counts).",
                }),
                "pattern": ("STRING", {
                    "default": DEFAULT_PATTERN,
                    "tooltip": "The companion's file name, with the word name in curly braces where the image's "
                    "base name goes (the default takes any extension; the help page has examples such as a _mask.png "
                    "or .txt ending). * is any text, ? one character; letter case is ignored when no file has the "
                    "exact case. Several files matching one image is an error that lists them.",
                }),
                "if_missing": ([FOLLOW, EMPTY], {
                    "default": FOLLOW,
                    "tooltip": "When an image has no companion. Follow error_handling: Batch Image Loader's Stop on "
                    "error stops the batch naming the image and the file looked for; Skip on error skips the image "
                    "and lists it at the end. Empty: go on with an empty text and an all-zero mask and black image "
                    "of the image's size (FOUND is false).",
                }),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        return float("nan")  # a companion file may change between two runs of the same image

    @classmethod
    def VALIDATE_INPUTS(cls, folder: str | None = None, pattern: str | None = None) -> bool | str:
        # Refuse a bad pattern or a missing folder when Queue is pressed, not after the first image ran.
        try:
            if isinstance(pattern, str):
                NamePattern.parse(pattern)
            if isinstance(folder, str) and folder.strip():
                companion_root(folder, bridge.input_directory())
        except (PatternError, CompanionError) as exc:
            return f"Batch Companion Loader: {printable(exc)}"
        return True

    def load_companion(self, relative_path: str, base_name: str, folder: str, pattern: str,
                       if_missing: str = FOLLOW, prompt: dict | None = None, unique_id: Any = None) -> tuple:
        try:
            parsed = NamePattern.parse(pattern)
            root = companion_root(folder, bridge.input_directory()) if (folder or "").strip() else None
            inputs = current_inputs(relative_path, base_name, loader_link(prompt, unique_id, "base_name",
                                                                          "relative_path"))
            if root is None and not inputs:
                raise CompanionError(
                    f"folder is empty (the image's own folder), but no Batch Image Loader of this prompt loaded "
                    f"'{printable(base_name)}' in '{printable(relative_path)}': link RELATIVE_PATH and BASE_NAME "
                    "from a Batch Image Loader, or set folder.")
            matches = [_match(s, relative_path, base_name, root, parsed) for s in inputs or [None]]
        except (PatternError, CompanionError) as exc:
            raise RuntimeError(f"Batch Companion Loader: {printable(exc)}") from None
        missing = [m for m in matches if m.path is None]
        if missing and if_missing != EMPTY:
            reasons = [f"no companion for '{printable(m.label)}': looked for '{printable(m.wanted)}' "
                       f"(pattern '{parsed.text}')" for m in missing]
            if all(m.source is not None and controller().skip_input(m.source, r) for m, r in zip(missing, reasons,
                                                                                                  strict=True)):
                log.warning("%s; skipping it (error_handling: Skip on error)", "; ".join(reasons))
                blocker = bridge.execution_blocker()
                return tuple(blocker for _ in OUTPUTS)
            raise RuntimeError(f"Batch Companion Loader: {'; '.join(reasons)}. The batch stops (error_handling: "
                               "Stop on error); choose if_missing Empty for workflows that expect gaps.")
        return self._outputs(matches)

    @staticmethod
    def _outputs(matches: list[_Match]) -> tuple:
        device, dtype = bridge.tensor_target()
        images, masks, texts = [], [], []
        try:
            for match in matches:
                text_file = match.path is not None and os.path.splitext(match.path)[1].lower() in TEXT_EXTENSIONS
                image, mask = _tensors(match, text_file, device, dtype)
                images.append(image)
                masks.append(mask)
                texts.append(read_text(match.path) if text_file and match.path else "")
            image, mask = _one_batch(images, matches), _one_batch(masks, matches)
        except (CompanionError, DecodeError) as exc:
            raise RuntimeError(f"Batch Companion Loader: {printable(exc)}") from None
        found = all(m.path is not None for m in matches)
        return image, mask, texts, found, "\n".join(m.path or "" for m in matches)
