"""Batch Image Saver: each result under the input's own name and subfolder, never clobbering."""

from __future__ import annotations

import os
from functools import partial
from typing import Any, ClassVar

import torch

from ..utils import log
from ..utils.batch.controller import controller
from ..utils.batch.prompt_runs import result_inputs
from ..utils.comfy import bridge
from ..utils.comfy.ui_preview import preview_entry
from ..utils.images.encode import encode, to_pixels, workflow_metadata
from ..utils.images.exif import EXIF_MODES, KEEP_NO_LOCATION, result_exif
from ..utils.log import printable
from ..utils.paths import FolderError, resolve_output_folder
from ..utils.saving.naming import (
    DEFAULT_STEM,
    FILE_FORMATS,
    NamingError,
    NumberAllocator,
    build_name,
    clean_relative_path,
    output_format,
    split_filename,
    target_path,
)
from ..utils.saving.safe_write import ADD_NUMBER, OVERWRITE, OVERWRITE_MODES, WriteFencedError, write_atomically
from ..utils.saving.write_errors import describe_write_error
from .prompt_links import link_source, loader_link

_numbers = NumberAllocator()


def _output_root(output_directory: str) -> str:
    try:
        return resolve_output_folder(output_directory, bridge.output_directory())
    except FolderError as exc:
        raise RuntimeError(f"Batch Image Saver: {printable(exc)}") from None


def _write_error(target: str, exc: OSError) -> RuntimeError:
    return RuntimeError(f"Batch Image Saver: {describe_write_error(target, exc)}")


_RUN_HINT = (". With images_per_run above 1, image i is saved under the run's i-th input, so the workflow must keep "
             "one image per input; set images_per_run to 1 for a workflow that makes more or fewer images than it "
             "gets.")


def _remove_partial(paths: list[str]) -> None:
    """Results written before a later image of the same input's run failed: the run is redone whole
    (or listed skipped), so keeping them would leave a second copy under Add number."""
    for path in paths:
        try:
            os.remove(path)
            log.warning("removed '%s': a later result of its run failed, and the run is redone whole", path)
        except OSError as exc:
            log.warning("could not remove '%s' after its run failed: %s", path, printable(exc))


class BatchImageSaver:
    """Saves images under the loader's file names, mirroring subfolders, with the workflow embedded."""

    CATEGORY = "image/batch"
    SEARCH_ALIASES: ClassVar[list[str]] = [
        "save folder", "batch save", "save batch", "folder", "directory", "save with original name",
        "save as", "export images", "output folder", "keep file names",
    ]
    DESCRIPTION = (
        "Saves each image under its input's name (link FILENAME and RELATIVE_PATH from Batch Image Loader), "
        "in the same subfolders, as PNG/JPEG/WebP/AVIF/TIFF, with the input's colour profile and EXIF. "
        "Writes are atomic and never overwrite a file unless overwrite_mode says so."
    )
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("IMAGE", "SAVED_PATH")
    OUTPUT_TOOLTIPS = (
        "The input images, unchanged.",
        "Absolute path of the saved file (one line per image for a batch of several).",
    )
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "output_directory": ("STRING", {
                    "default": "",
                    "tooltip": "Empty: ComfyUI's output folder. Relative: a folder inside it. "
                    "Absolute: that folder (created when missing).",
                }),
                "filename": ("STRING", {
                    "default": "",
                    "tooltip": "Link the loader's FILENAME here to keep each input's name (with images_per_run, "
                    "each image of the run gets its own input's name). Empty: numbered names (image_1, image_2, ...).",
                }),
            },
            "optional": {
                "relative_path": ("STRING", {
                    "default": "",
                    "tooltip": "Link the loader's RELATIVE_PATH here to mirror the input's subfolders (each image of a "
                    "run its own). "
                    "'..' and absolute parts are ignored: files always stay inside output_directory.",
                }),
                "filename_prefix": ("STRING", {"default": "", "tooltip": "Text put before each file name."}),
                "filename_suffix": ("STRING", {"default": "", "tooltip": "Text put after each file name, "
                                                                          "before the extension."}),
                "file_format": (list(FILE_FORMATS), {
                    "default": "png",
                    "tooltip": "same as input keeps the input's format (BMP, GIF, HEIC and JPEG XL inputs are saved "
                    "as PNG).",
                }),
                "quality": ("INT", {
                    "default": 95, "min": 1, "max": 100, "step": 1,
                    "tooltip": "JPEG/WebP/AVIF quality. 100 on WebP means lossless.",
                }),
                "bit_depth": (["8", "16"], {
                    "default": "8",
                    "tooltip": "Bits per channel for PNG and TIFF. 16 keeps the full precision of the IMAGE "
                    "(e.g. of a 16-bit input). JPEG, WebP and AVIF are always 8-bit.",
                }),
                "overwrite_mode": (list(OVERWRITE_MODES), {
                    "default": ADD_NUMBER,
                    "tooltip": "When the file exists: Add number (name_1, name_2, ...), Skip existing (leave it "
                    "untouched, output its path), or Overwrite (replace it).",
                }),
                "embed_workflow": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "Embed the prompt and workflow (PNG text / WebP and AVIF EXIF) like SaveImage, so the "
                    "file can be dropped onto ComfyUI. ComfyUI's --disable-metadata turns this off.",
                }),
                "exif_metadata": (list(EXIF_MODES), {  # last: saved workflows keep their widget order
                    "default": KEEP_NO_LOCATION,
                    "tooltip": "The input photo's EXIF (date, camera, lens, copyright, GPS) in the result: Keep all "
                    "but location drops only the GPS position, so shared results do not reveal where they "
                    "were taken; Keep all; Drop. Orientation is set to 1 (the pixels are upright) and the size "
                    "tags match the result.",
                }),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, output_directory: str | None = None) -> bool | str:
        # Refuse an unusable output_directory when Queue is pressed, not after the first image ran.
        if isinstance(output_directory, str):
            try:
                _output_root(output_directory)
            except RuntimeError as exc:
                return str(exc)
        return True

    def save_images(
        self,
        images: torch.Tensor,
        output_directory: str,
        filename: str,
        relative_path: str = "",
        filename_prefix: str = "",
        filename_suffix: str = "",
        file_format: str = "png",
        quality: int = 95,
        bit_depth: str = "8",
        overwrite_mode: str = ADD_NUMBER,
        exif_metadata: str = KEEP_NO_LOCATION,
        embed_workflow: bool = True,
        prompt: dict | None = None,
        extra_pnginfo: dict | None = None,
        unique_id: Any = None,
    ) -> dict[str, Any]:
        root = _output_root(output_directory)
        stem, input_ext = split_filename(filename)
        loader_node = loader_link(prompt, unique_id, "filename", "relative_path")
        inputs = controller().run_inputs(relative_path or "", filename, loader_node) if stem else []
        count = int(images.shape[0])
        run = len(inputs) > 1  # images_per_run: image i is the run's i-th input
        try:
            sources = result_inputs(inputs, count, "image", _RUN_HINT)
        except NamingError as exc:
            raise RuntimeError(f"Batch Image Saver: {printable(exc)}") from None
        if inputs:  # the loader's name for this input, unique within its batch (see utils/saving/output_names.py)
            stem = inputs[0].stem or stem
        depth_wanted = bit_depth == "16"
        subdir = clean_relative_path(relative_path)
        own_subdirs = run and link_source(prompt, unique_id, "relative_path") is not None
        metadata = {}
        if embed_workflow and not bridge.metadata_disabled():
            metadata = workflow_metadata(prompt, extra_pnginfo)
        saved, previews = [], []
        redone: list[str] = []  # new files of inputs whose run is recorded when the prompt ends
        try:
            for i in range(count):
                source = sources[i]
                own_stem, own_ext = (stem, input_ext) if not run or source is None else \
                    (source.stem, split_filename(source.rel_path)[1])
                fmt, extension = output_format(file_format, own_ext)
                depth = 16 if depth_wanted and fmt in ("png", "tiff") else 8
                try:
                    name = build_name(own_stem or DEFAULT_STEM, filename_prefix, filename_suffix,
                                      i if count > 1 and not run else None, extension)
                    folder = subdir if not (own_subdirs and source) else \
                        clean_relative_path(source.rel_path.rpartition("/")[0])
                    path = target_path(root, folder, name)
                except NamingError as exc:
                    raise RuntimeError(f"Batch Image Saver: {printable(exc)}") from None
                if stem:
                    target, mode, others = path, overwrite_mode, _numbers.candidates(path)
                else:  # no file name given: numbered names, never overwriting
                    numbered = _numbers.candidates(path)
                    target, mode, others = next(numbered), ADD_NUMBER, numbered
                if mode == OVERWRITE and controller().is_batch_input(target):
                    log.warning("overwriting the input file '%s' (overwrite_mode is Overwrite)", target)
                pixels = to_pixels(images[i], depth)
                exif = result_exif(source.exif, exif_metadata, pixels.shape[1], pixels.shape[0]) if source else None
                fence = partial(controller().fenced, source) if source is not None else None
                try:
                    final, written = write_atomically(
                        target, partial(encode, pixels=pixels, file_format=fmt, quality=int(quality), metadata=metadata,
                                        icc_profile=source.icc_profile if source else None, exif=exif), mode, others,
                        fence)
                except WriteFencedError:
                    continue  # another server owns this image now; the fence logged why
                except OSError as exc:
                    raise _write_error(target, exc) from None
                if not written:
                    log.info("kept existing '%s' (overwrite_mode: Skip existing)", final)
                saved.append(final)
                previews.append(preview_entry(final, pixels))
                recorded = source is not None and (i == count - 1 or len(inputs) == count) and \
                    controller().result_saved(source)  # recorded done now, before anything else can be slow
                if source is not None and written and mode == ADD_NUMBER and not recorded:
                    redone.append(final)
        except Exception:
            _remove_partial(redone)  # the whole run is redone (or skipped): no second copy of these
            raise
        return {"ui": {"images": previews}, "result": (images, "\n".join(saved))}
