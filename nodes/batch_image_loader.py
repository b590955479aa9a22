"""Batch Image Loader: one image of a folder per run; press Queue once and it runs them all."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..utils.batch.batch import BatchError
from ..utils.batch.controller import controller
from ..utils.batch.identity import workflow_identity
from ..utils.batch.prompt_runs import CONTINUE, RESET, SKIP_ON_ERROR, STOP_ON_ERROR
from ..utils.batch.state import BatchSettings
from ..utils.comfy import bridge
from ..utils.file_listing import DEFAULT_CUSTOM_PATTERN, FILTER_PRESETS, SORT_MODES, FileMatcher, has_any_image
from ..utils.images.color import COLOR_PROFILE_MODES, CONVERT_TO_SRGB
from ..utils.paths import resolve_folder

MAX_IMAGES_PER_RUN = 4096

OUTPUTS = (
    ("IMAGE", "IMAGE", "The image, float RGB in 0..1, EXIF rotation applied; with images_per_run, the run's k images "
     "as one batch."),
    ("MASK", "MASK", "1 - alpha of the image; all zeros (same size) when it has no transparency."),
    ("STRING", "FILENAME", "File name with extension, e.g. beach_001.jpg (of the run's first image). Link it to Batch "
     "Image Saver."),
    ("STRING", "BASE_NAME", "File name without extension, e.g. beach_001."),
    ("STRING", "RELATIVE_PATH", "Subfolder of the file relative to directory ('' at the top level)."),
    ("STRING", "FULL_PATH", "Absolute path of the file."),
    ("INT", "INDEX", "0-based position of the image (the run's first) in the batch."),
    ("INT", "TOTAL_COUNT", "Number of images in the batch."),
    ("BOOLEAN", "BATCH_COMPLETE", "True on the last image of the batch (on the run that holds it)."),
    ("STRING", "RUN_FILES", "The relative paths of every image of this run, one per line, in the order of IMAGE "
     "(just FILENAME's path when images_per_run is 1)."),
)


def _settings(
    unique_id: Any,
    directory: str,
    filter_preset: str,
    custom_pattern: str,
    include_subfolders: bool,
    sort_by: str,
    workflow_id: str,
    shared_job: str = "",
    shared_job_folder: str = "",
) -> BatchSettings:
    shared_job = (shared_job or "").strip()
    return BatchSettings(
        node_id=str(unique_id),
        directory=resolve_folder(directory, bridge.input_directory()),
        filter_preset=filter_preset,
        custom_pattern=custom_pattern if filter_preset == "Custom" else "",
        include_subfolders=bool(include_subfolders),
        sort_by=sort_by,
        workflow_id=workflow_id,
        shared_job=shared_job,
        shared_job_folder=resolve_folder(shared_job_folder, bridge.input_directory())
        if shared_job and (shared_job_folder or "").strip() else "",
    )


def folder_problem(
    directory: str, filter_preset: str, custom_pattern: str, include_subfolders: bool, sort_by: str
) -> str | None:
    """Why this folder/filter cannot start a batch, in words for the user; None when it can."""
    if not (directory or "").strip():
        return "directory is empty: enter the folder of images to process."
    folder = resolve_folder(directory, bridge.input_directory())
    if not os.path.exists(folder):
        return f"Folder '{folder}' does not exist."
    if not os.path.isdir(folder):
        return f"'{folder}' is a file, not a folder."
    if sort_by not in SORT_MODES:
        return f"sort_by '{sort_by}' is not one of: {', '.join(SORT_MODES)}."
    try:
        matcher = FileMatcher(filter_preset, custom_pattern)
        found = has_any_image(folder, matcher, bool(include_subfolders))
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"Folder '{folder}' cannot be read: {exc.strerror or exc}."
    if not found:
        what = custom_pattern if filter_preset == "Custom" else ", ".join(FILTER_PRESETS[filter_preset])
        where = " or its subfolders" if include_subfolders else ""
        return f"No matching images ({what}) in '{folder}'{where}."
    return None


def images_per_run_problem(value: Any) -> str | None:
    """Why value cannot be images_per_run, in words for the user; None when it can (or is linked)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGES_PER_RUN:
        return (f"images_per_run must be a whole number from 1 to {MAX_IMAGES_PER_RUN}, not {value!r}: it is how "
                "many images of one size a run loads as one batch (1: one image per run).")
    return None


class BatchImageLoader:
    """Loads the next image of a folder each run and queues the workflow again until the folder is done."""

    CATEGORY = "image/batch"
    # Words people type into the node search (ComfyUI 0.33+ lists them in /object_info). No
    # ESSENTIALS_CATEGORY: the frontend keeps that for its curated core panel and then shows the
    # node as a core "essentials" node instead of as this pack's.
    SEARCH_ALIASES: ClassVar[list[str]] = [
        "folder", "batch", "directory", "loop", "load folder", "load images from folder", "image folder",
        "batch load", "iterate folder", "process folder", "dataset",
    ]
    DESCRIPTION = (
        "Processes a whole folder with one press of Queue: each run loads the next image (natural "
        "file-name order) and queues the workflow again after it finished, until every image ran once. "
        "Cancel stops the batch; progress survives a restart."
    )
    RETURN_TYPES = tuple(o[0] for o in OUTPUTS)
    RETURN_NAMES = tuple(o[1] for o in OUTPUTS)
    OUTPUT_TOOLTIPS = tuple(o[2] for o in OUTPUTS)
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "directory": ("STRING", {
                    "default": "",
                    "tooltip": "Folder of images: an absolute path, or a path relative to ComfyUI's input folder.",
                }),
                "filter_preset": (list(FILTER_PRESETS), {
                    "default": "All Images",
                    "tooltip": "Which files to take. All Images: png, jpg, jpeg, webp, bmp, tif, tiff, gif, avif, "
                    "heic, heif, jxl (any letter case; HEIC/HEIF need pillow-heif, JPEG XL pillow-jxl-plugin). "
                    "Custom uses custom_pattern.",
                }),
                "iteration_mode": ([CONTINUE, RESET], {
                    "default": CONTINUE,
                    "tooltip": "Continue: pick up after the last finished image (also after a restart); "
                    "a finished batch starts over. Reset: start again from start_index when you press Queue.",
                }),
                "error_handling": ([STOP_ON_ERROR, SKIP_ON_ERROR], {
                    "default": STOP_ON_ERROR,
                    "tooltip": "What an unreadable image or a failing node does: stop the batch with an error "
                    "naming the file, or skip that image, go on, and list skipped files at the end.",
                }),
            },
            "optional": {
                "custom_pattern": ("STRING", {
                    "default": DEFAULT_CUSTOM_PATTERN,
                    "tooltip": "Comma-separated globs used with filter_preset Custom, e.g. '*.png, scan_*.tif'. "
                    "A pattern with '/' matches the path relative to directory.",
                }),
                "start_index": ("INT", {
                    "default": 0, "min": 0, "max": 10_000_000, "step": 1,
                    "tooltip": "0-based index of the first image of a new batch (used by Reset and by a new pass).",
                }),
                "include_subfolders": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Also take images from subfolders (hidden folders are skipped). "
                    "RELATIVE_PATH tells the subfolder of each image.",
                }),
                "sort_by": (list(SORT_MODES), {
                    "default": SORT_MODES[0],
                    "tooltip": "Name (natural): img2 before img10, ignoring case. Modified time: oldest first.",
                }),
                "shared_job": ("STRING", {
                    "default": "",
                    "tooltip": "Several ComfyUI servers (one per GPU, or on several machines) on one folder: give "
                    "their loaders the same name here and each image is processed by exactly one of them. "
                    "Empty: this server runs the whole folder on its own.",
                }),
                "shared_job_folder": ("STRING", {
                    "default": "",
                    "tooltip": "Where a shared job keeps its claims. Empty: a hidden folder inside directory. "
                    "Set a writable folder every server can reach when directory is read-only.",
                }),
                "color_profile": (list(COLOR_PROFILE_MODES), {
                    "default": CONVERT_TO_SRGB,
                    "tooltip": "Convert to sRGB: images with an embedded colour profile (Display P3 phone photos, "
                    "Adobe RGB, CMYK) are converted to sRGB, as models expect. Keep source: the file's pixel "
                    "values untouched; Batch Image Saver tags the result with the source's profile. CMYK is "
                    "always converted (an IMAGE is RGB).",
                }),
                "images_per_run": ("INT", {  # last: saved workflows keep their widget order
                    "default": 1, "min": 1, "max": MAX_IMAGES_PER_RUN, "step": 1,
                    "tooltip": "How many consecutive images of the same size one run loads, as one IMAGE batch "
                    "[k, H, W, 3]: much faster on small images and lets GPU nodes work on a batch. An image of "
                    "another size starts the next run. Memory: up to 2 x k decoded images, this run's and the next "
                    "one's, prepared while this one works (a 1024 px image is 12 MB as IMAGE), and the memory of "
                    "the run before, kept to be reused, plus whatever the workflow makes of them. Batch Image "
                    "Saver names each result after its own input. 1: one image per run.",
                }),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        # A new NaN object every call: NaN != NaN, so ComfyUI never reuses a cached result.
        return float("nan")

    @classmethod
    def VALIDATE_INPUTS(
        cls,
        directory: str,
        filter_preset: str,
        custom_pattern: str = DEFAULT_CUSTOM_PATTERN,
        include_subfolders: bool = False,
        sort_by: str = SORT_MODES[0],
        images_per_run: int | None = 1,
    ) -> bool | str:
        # Runs on the server thread for every queued prompt, the batch's own continuations too:
        # those skip the scan; a new batch's scan stops at the first matching file.
        problem = images_per_run_problem(images_per_run)
        if problem:
            return problem
        folder = resolve_folder(directory, bridge.input_directory()) if (directory or "").strip() else ""
        if folder and controller().is_running(folder, filter_preset, custom_pattern, include_subfolders, sort_by):
            return True
        return folder_problem(directory, filter_preset, custom_pattern, include_subfolders, sort_by) or True

    def load_image(
        self,
        directory: str,
        filter_preset: str,
        iteration_mode: str,
        error_handling: str,
        custom_pattern: str = DEFAULT_CUSTOM_PATTERN,
        start_index: int = 0,
        include_subfolders: bool = False,
        sort_by: str = SORT_MODES[0],
        color_profile: str = CONVERT_TO_SRGB,
        shared_job: str = "",
        shared_job_folder: str = "",
        images_per_run: int = 1,
        prompt: dict | None = None,
        extra_pnginfo: dict | None = None,
        unique_id: Any = None,
    ) -> tuple:
        settings = _settings(unique_id, directory, filter_preset, custom_pattern, include_subfolders, sort_by,
                             workflow_identity(extra_pnginfo, prompt), shared_job, shared_job_folder)
        problem = images_per_run_problem(images_per_run)
        if problem:
            raise RuntimeError(f"Batch Image Loader: {problem}")
        device, dtype = bridge.tensor_target()
        try:
            loaded = controller().load_next(
                settings, iteration_mode, error_handling, int(start_index), prompt, extra_pnginfo, device, dtype,
                color_profile=color_profile if color_profile in COLOR_PROFILE_MODES else CONVERT_TO_SRGB,
                images_per_run=int(images_per_run),
            )
        except (BatchError, OSError) as exc:
            raise RuntimeError(f"Batch Image Loader: {exc}") from None
        if loaded is None:
            blocker = bridge.execution_blocker()
            return tuple(blocker for _ in OUTPUTS)
        image, mask = loaded.tensors(device, dtype)
        entry = loaded.entry
        return (
            image,
            mask,
            entry.filename,
            os.path.splitext(entry.filename)[0],
            entry.rel_dir,
            loaded.full_path,
            loaded.index,
            loaded.total,
            loaded.is_last,
            loaded.run_files,
        )
