"""Batch Text Saver: a text result (caption, tags, description) saved under its input's name,
beside the saved image or in its own folder tree, with the image saver's naming rules."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..utils import log
from ..utils.batch.controller import controller
from ..utils.batch.prompt_runs import result_inputs
from ..utils.comfy import bridge
from ..utils.log import printable
from ..utils.paths import FolderError, resolve_output_folder
from ..utils.saving.naming import (
    NamingError,
    NumberAllocator,
    build_name,
    clean_relative_path,
    split_filename,
    target_path,
)
from ..utils.saving.safe_write import ADD_NUMBER
from ..utils.saving.text_write import DEFAULT_EXTENSION, TEXT_MODES, TextExtensionError, clean_extension, write_text
from ..utils.saving.write_errors import describe_write_error
from .prompt_links import link_source, loader_link

DEFAULT_STEM = "text"
_numbers = NumberAllocator()


def _fail(exc: object) -> RuntimeError:
    return RuntimeError(f"Batch Text Saver: {printable(exc)}")


def _beside(saved_path: str, extension: str) -> list[str]:
    """One target per line of the image saver's SAVED_PATH: the same folder and stem."""
    paths = [line.strip() for line in saved_path.splitlines() if line.strip()]
    for path in paths:
        if not os.path.isabs(path):
            raise _fail(f"image_path '{path}' is not an absolute path: link Batch Image Saver's SAVED_PATH.")
    return [os.path.splitext(p)[0] + extension for p in paths]


def _one(values: Any, default: Any) -> Any:
    """A setting's value: INPUT_IS_LIST hands every input over as a list (one item for a widget)."""
    if isinstance(values, list):
        return values[0] if values else default
    return default if values is None else values


def _named(output_directory: str, filename: str, relative_path: str, prefix: str, suffix: str, ext: str,
           count: int, own_subdirs: bool, loader_node: str | None) -> list[str]:
    """The targets of count texts, named as Batch Image Saver names images: under the input's name
    (the loader's stem rules); a run's k texts each under its own input's name (and subfolder when
    relative_path is linked); several texts for one input get _0001, _0002, ..."""
    root = resolve_output_folder(output_directory, bridge.output_directory())
    stem, _ = split_filename(filename)
    inputs = controller().run_inputs(relative_path or "", filename, loader_node) if stem else []
    run = len(inputs) > 1  # images_per_run: text i belongs to the run's i-th input
    sources = result_inputs(inputs, count, "text", ": give one text per image of the run.")
    subdir = clean_relative_path(relative_path)
    targets = []
    for i, source in enumerate(sources):
        own_stem = (source.stem if source is not None else "") or stem
        folder = clean_relative_path(source.rel_path.rpartition("/")[0]) if run and own_subdirs and source else subdir
        name = build_name(own_stem or DEFAULT_STEM, prefix, suffix, i if count > 1 and not run else None, ext)
        targets.append(target_path(root, folder, name))
    return targets


class BatchTextSaver:
    """Saves a text under the loader's file name and subfolder, or beside the image saver's result."""

    CATEGORY = "image/batch"
    SEARCH_ALIASES: ClassVar[list[str]] = [
        "caption", "txt", "sidecar", "pair", "save text", "save caption", "write text", "tags", "dataset",
        "text file", "captions folder",
    ]
    DESCRIPTION = (
        "Saves a text result (a caption, tags) as name.txt under its input's name: link Batch Image Saver's "
        "SAVED_PATH into image_path to put it beside the saved image (same folder and stem), or link FILENAME and "
        "RELATIVE_PATH from Batch Image Loader. UTF-8, atomic writes, never overwriting unless overwrite_mode says so."
    )
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("SAVED_PATH",)
    OUTPUT_TOOLTIPS = ("Absolute path of the saved text file (one line per text for several).",)
    FUNCTION = "save_text"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True  # a list of texts (one per image of a run, or a tagger's list) arrives in one call

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": ("STRING", {
                    "forceInput": True,
                    "tooltip": "The text to save (UTF-8). A list of texts (one per image of a run, as Batch "
                    "Companion Loader's TEXT or a tagger gives them) is saved as one file per text.",
                }),
                "output_directory": ("STRING", {
                    "default": "",
                    "tooltip": "Empty: ComfyUI's output folder. Relative: a folder inside it. Absolute: that folder "
                    "(created when missing); the input folder itself puts captions beside the original images. "
                    "Not used when image_path is linked.",
                }),
                "filename": ("STRING", {
                    "default": "",
                    "tooltip": "Link the loader's FILENAME here to save under each input's name, as Batch Image "
                    "Saver does. Empty: text, text_1, ...",
                }),
            },
            "optional": {
                "image_path": ("STRING", {
                    "forceInput": True,
                    "tooltip": "Link Batch Image Saver's SAVED_PATH: the text is saved beside that image, with its "
                    "folder and name (photo_1.png gives photo_1.txt). output_directory, filename, relative_path, "
                    "prefix and suffix are then not used.",
                }),
                "relative_path": ("STRING", {
                    "default": "",
                    "tooltip": "Link the loader's RELATIVE_PATH here to mirror the input's subfolders. '..' and "
                    "absolute parts are ignored: files always stay inside output_directory.",
                }),
                "filename_prefix": ("STRING", {"default": "", "tooltip": "Text put before each file name."}),
                "filename_suffix": ("STRING", {"default": "", "tooltip": "Text put after each file name, "
                                                                          "before the extension."}),
                "extension": ("STRING", {
                    "default": DEFAULT_EXTENSION,
                    "tooltip": "File extension, without or with the dot: txt (most trainers read name.txt), "
                    "caption, tags, json...",
                }),
                "overwrite_mode": (list(TEXT_MODES), {
                    "default": ADD_NUMBER,
                    "tooltip": "When the file exists: Add number (name_1.txt, ...), Skip existing (leave it), "
                    "Overwrite (replace it), or Append (add the text at its end, on a new line).",
                }),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, output_directory: Any = None, extension: Any = None) -> bool | str:
        output_directory, extension = _one(output_directory, None), _one(extension, None)
        try:
            if isinstance(output_directory, str):
                resolve_output_folder(output_directory, bridge.output_directory())
            if isinstance(extension, str):
                clean_extension(extension)
        except (FolderError, TextExtensionError) as exc:
            return str(_fail(exc))
        return True

    def save_text(self, text: list[str], output_directory: list[str], filename: list[str],
                  image_path: list[str] | None = None, relative_path: list[str] | None = None,
                  filename_prefix: list[str] | None = None, filename_suffix: list[str] | None = None,
                  extension: list[str] | None = None, overwrite_mode: list[str] | None = None,
                  prompt: list[dict] | None = None, unique_id: list[Any] | None = None) -> tuple[str]:
        texts = [t if isinstance(t, str) else str(t) for t in text]
        name, mode = _one(filename, ""), _one(overwrite_mode, ADD_NUMBER)
        try:
            ext = clean_extension(_one(extension, DEFAULT_EXTENSION))
            if image_path:
                targets = _beside("\n".join(image_path), ext)
                if len(targets) != len(texts):
                    raise NamingError(f"{len(texts)} texts for {len(targets)} saved images in image_path: give one "
                                      "text per saved image.")
            else:
                own_prompt, node = _one(prompt, None), _one(unique_id, None)
                own_subdirs = link_source(own_prompt, node, "relative_path") is not None
                targets = _named(_one(output_directory, ""), name, _one(relative_path, ""),
                                 _one(filename_prefix, ""), _one(filename_suffix, ""), ext, len(texts), own_subdirs,
                                 loader_link(own_prompt, node, "filename", "relative_path"))
        except (FolderError, NamingError, TextExtensionError) as exc:
            raise _fail(exc) from None
        if not image_path and not split_filename(name)[0]:
            mode = ADD_NUMBER  # no file name given: numbered names, never overwriting
        saved = []
        for target, one in zip(targets, texts, strict=True):
            try:
                final, written = write_text(target, one, mode, _numbers.candidates(target))
            except OSError as exc:
                raise _fail(describe_write_error(target, exc)) from None
            if not written:
                log.info("kept existing '%s' (overwrite_mode: Skip existing)", final)
            saved.append(final)
        return ("\n".join(saved),)
