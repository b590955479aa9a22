"""Batch Text Saver: a text result (caption, tags, description) saved under its input's name,
beside the saved image or in its own folder tree, with the image saver's naming rules."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..utils import log
from ..utils.batch.controller import controller
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

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "text": ("STRING", {"forceInput": True, "tooltip": "The text to save (UTF-8)."}),
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
        }

    @classmethod
    def VALIDATE_INPUTS(cls, output_directory: str | None = None, extension: str | None = None) -> bool | str:
        try:
            if isinstance(output_directory, str):
                resolve_output_folder(output_directory, bridge.output_directory())
            if isinstance(extension, str):
                clean_extension(extension)
        except (FolderError, TextExtensionError) as exc:
            return str(_fail(exc))
        return True

    def save_text(self, text: str, output_directory: str, filename: str, image_path: str | None = None,
                  relative_path: str = "", filename_prefix: str = "", filename_suffix: str = "",
                  extension: str = DEFAULT_EXTENSION, overwrite_mode: str = ADD_NUMBER) -> tuple[str]:
        try:
            ext = clean_extension(extension)
            targets = _beside(image_path, ext) if image_path else [
                self._named(output_directory, filename, relative_path, filename_prefix, filename_suffix, ext)]
        except (FolderError, NamingError, TextExtensionError) as exc:
            raise _fail(exc) from None
        if not image_path and not split_filename(filename)[0]:
            overwrite_mode = ADD_NUMBER  # no file name given: numbered names, never overwriting
        saved = []
        for target in targets:
            try:
                final, written = write_text(target, text or "", overwrite_mode, _numbers.candidates(target))
            except OSError as exc:
                raise _fail(describe_write_error(target, exc)) from None
            if not written:
                log.info("kept existing '%s' (overwrite_mode: Skip existing)", final)
            saved.append(final)
        return ("\n".join(saved),)

    @staticmethod
    def _named(output_directory: str, filename: str, relative_path: str, prefix: str, suffix: str, ext: str) -> str:
        """The target under the input's name, as Batch Image Saver names the image (same stem rules)."""
        root = resolve_output_folder(output_directory, bridge.output_directory())
        stem, _ = split_filename(filename)
        inputs = controller().run_inputs(relative_path or "", filename) if stem else []
        if inputs:  # the loader's name for this input, unique within its batch
            stem = inputs[0].stem or stem
        name = build_name(stem or DEFAULT_STEM, prefix, suffix, None, ext)
        return target_path(root, clean_relative_path(relative_path), name)
