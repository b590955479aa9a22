"""Decode one image file into ComfyUI's IMAGE and MASK tensors, exactly as the user sees it.

Pure: a path in, compact pixels out (utils/images/tensors.py makes the tensors). EXIF orientation
is applied, 8- and 16-bit sources keep their precision (16-bit is scaled by 65535, where core
LoadImage clips it), and transparency is kept apart for the MASK (1 - alpha). The embedded colour
profile is converted to sRGB or kept (utils/images/color.py); the profile and EXIF the result
should carry travel with the pixels.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..log import printable
from .color import CONVERT_TO_SRGB, apply_profile, convert_pil
from .exif import source_exif
from .formats import missing_plugin
from .pixel_limit import MAX_PIXELS_ENV as MAX_PIXELS_ENV  # where callers have always found it
from .pixel_limit import max_pixels, pillow_limit_lifted, refusal, too_many_pixels
from .tiff16 import decode_tiff16

if TYPE_CHECKING:
    import torch

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Set in the decode worker processes (utils/images/decode_worker.py), which never import torch: it
# would add about 700 MB to each. There JPEGs are decoded by Pillow (the same pixels: libjpeg-turbo
# both), and a file that needs torchvision (16-bit RGB PNG) raises NeedsTorch: the loader then
# decodes it in ComfyUI's process.
WITHOUT_TORCH = False


class NeedsTorch(Exception):  # noqa: N818  (not an error: the file is decoded elsewhere)
    """This file needs torchvision's decoder, which this process does not load."""

# PNG colour types that Pillow reduces to 8 bits when they are 16-bit (RGB, RGBA).
_PNG_16BIT_COLOUR_TYPES = (2, 6)


class DecodeError(ValueError):
    """An image could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Cannot read image '{printable(path)}': {reason}")
        self.path = path
        self.reason = reason


@dataclass
class DecodedImage:
    """Pixels still in their compact source type: color HxWxC (C is 1 or 3), alpha HxW or None."""

    color: np.ndarray
    alpha: np.ndarray | None
    scale: float  # value of full intensity: 255, 65535 or 1.0 (float sources)
    icc_profile: bytes | None = None  # the profile a result of these pixels carries
    exif: bytes | None = None  # the source's EXIF (utils/images/exif.py)

    @property
    def height(self) -> int:
        return int(self.color.shape[0])

    @property
    def width(self) -> int:
        return int(self.color.shape[1])


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _as_array(img: Image.Image) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(img)


def _split(img: Image.Image) -> DecodedImage:
    """Pixels of a loaded PIL frame as (color, alpha, scale), converting only where needed."""
    mode = img.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
    elif mode == "1":
        img = img.convert("L")
        mode = "L"
    elif mode in ("La", "RGBa"):
        img = img.convert("LA" if mode == "La" else "RGBA")
        mode = img.mode
    elif mode not in ("RGB", "RGBA", "L", "LA", "I", "F") and not mode.startswith("I;16"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
        mode = "RGB"

    arr = _as_array(img)
    if mode == "RGB":
        return DecodedImage(arr, None, 255.0)
    if mode == "RGBA":
        return DecodedImage(arr[..., :3], arr[..., 3], 255.0)
    if mode == "L":
        return DecodedImage(arr[..., None], None, 255.0)
    if mode == "LA":
        return DecodedImage(arr[..., :1], arr[..., 1], 255.0)
    if mode.startswith("I;16"):
        return DecodedImage(arr.astype(np.uint16, copy=False)[..., None], None, 65535.0)
    if mode == "I":  # 32-bit integer; in practice 16-bit PNG/TIFF data
        return DecodedImage(np.clip(arr, 0, 65535).astype(np.uint16)[..., None], None, 65535.0)
    # mode == "F": float data, shown as 0..1
    return DecodedImage(np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)[..., None], None, 1.0)


def _png_is_16bit_colour(head: bytes) -> bool:
    """True for a 16-bit RGB/RGBA PNG, which Pillow would reduce to 8 bits."""
    return (
        len(head) >= 26
        and head.startswith(_PNG_SIGNATURE)
        and head[12:16] == b"IHDR"
        and head[24] == 16
        and head[25] in _PNG_16BIT_COLOUR_TYPES
    )


def _torchvision_io():
    """torchvision's libpng/libjpeg decoders (deprecated upstream, so optional: None when gone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torchvision.io import ImageReadMode, decode_jpeg, decode_png
        except ImportError:
            return None
    return ImageReadMode, decode_jpeg, decode_png


def _read_tensor(path: str) -> torch.Tensor:
    import torch  # here, not at the top: a decode worker process imports torch only when it needs it

    with open(path, "rb") as fh:
        return torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8)


def _hwc_numpy(chw: torch.Tensor) -> np.ndarray:
    """CHW tensor from torchvision -> HxWxC numpy array (no copy when the memory is already HWC)."""
    import torch

    hwc = chw.permute(1, 2, 0)
    if chw.dtype == torch.uint16:  # numpy has uint16, torch cannot hand it over: go through int16
        return hwc.view(torch.int16).numpy().view(np.uint16)
    return hwc.numpy()


def _libpng_or_libjpeg(path: str, codec: str) -> np.ndarray | None:
    """HxWxC pixels from torchvision's "png" or "jpeg" decoder; None when it is missing or the
    file is unusual (truncated, ...), so that Pillow decodes it or names the problem."""
    if WITHOUT_TORCH:
        raise NeedsTorch(path)
    tv = _torchvision_io()
    if tv is None:
        return None
    mode, decode_jpeg, decode_png = tv
    decode = decode_png if codec == "png" else decode_jpeg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _hwc_numpy(decode(_read_tensor(path), mode=mode.UNCHANGED))
        except RuntimeError:
            return None


def _decode_png16(path: str) -> DecodedImage | None:
    """16-bit RGB(A) PNG through libpng, which keeps all 16 bits (Pillow reduces them to 8)."""
    hwc = _libpng_or_libjpeg(path, "png")
    if hwc is None:
        return None
    return DecodedImage(hwc[..., :3], hwc[..., 3] if hwc.shape[2] == 4 else None, 65535.0)


def _decode_jpeg(path: str) -> DecodedImage | None:
    """RGB/gray JPEG through libjpeg-turbo straight into a tensor: same pixels as Pillow, without
    Pillow's extra full-size copy out of its image memory."""
    hwc = _libpng_or_libjpeg(path, "jpeg")
    return DecodedImage(hwc, None, 255.0) if hwc is not None and hwc.shape[2] in (1, 3) else None


def _fast_decode(path: str, img: Image.Image) -> DecodedImage | None:
    """A decoder that beats Pillow for this file (JPEG) or keeps more bits (16-bit RGB(A) PNG, TIFF)."""
    if img.format == "JPEG" and img.mode in ("RGB", "L"):
        return None if WITHOUT_TORCH else _decode_jpeg(path)
    if img.format == "TIFF":
        found = decode_tiff16(path, img)
        return None if found is None else DecodedImage(*found, 65535.0)
    if img.format == "PNG":
        with open(path, "rb") as fh:
            if _png_is_16bit_colour(fh.read(26)):
                return _decode_png16(path)
    return None


def _check_file(path: str) -> None:
    """Refuse what is not a readable regular file before opening it (a FIFO would block forever)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DecodeError(path, "the file no longer exists (moved or deleted during the batch)") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot be accessed ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DecodeError(path, "it is a folder now, not an image file (replaced during the batch?): put the "
                                "image back or move the folder away, then press Queue to go on")
    if not stat.S_ISREG(info.st_mode):
        raise DecodeError(path, "it is not a regular file (a FIFO, socket or device), so it holds no image: "
                                "move it out of the folder, then press Queue to go on")
    if info.st_size == 0:
        raise DecodeError(path, "the file is empty (0 bytes)")


def _decode(path: str, limit: int | None, color_profile: str) -> DecodedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            refused = too_many_pixels(*img.size, limit)
            if refused:
                raise DecodeError(path, refused)
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            profile, exif = img.info.get("icc_profile") or None, source_exif(img)
            decoded = _fast_decode(path, img)
            if decoded is None:
                img.seek(0)  # multi-frame files (GIF, WebP, MPO, TIFF): the first frame
                img.load()
                if img.mode == "CMYK":  # an IMAGE is RGB: through the profile in both colour modes
                    img, profile = convert_pil(img, profile, path), None
                decoded = _split(img)
    decoded = apply_profile(decoded, profile, path, color_profile)
    return _oriented(replace(decoded, exif=exif), orientation)


def decode_image(path: str, color_profile: str = CONVERT_TO_SRGB) -> DecodedImage:
    """Decode the first frame of path in the colour space color_profile asks for (see
    utils/images/color.py); raises DecodeError (naming the file) on any failure."""
    _check_file(path)
    limit = max_pixels()
    try:
        try:
            return _decode(path, limit, color_profile)
        except Image.DecompressionBombError:
            # Pillow's own ceiling (twice its limit) is below ours: our limit decides, checked in _decode.
            ceiling = 2 * max(limit or 0, Image.MAX_IMAGE_PIXELS or 0)
            try:
                with pillow_limit_lifted(limit):
                    return _decode(path, limit, color_profile)
            except Image.DecompressionBombError:  # above twice our own limit, too
                raise DecodeError(path, refusal(f"more than {ceiling:,} pixels", limit or 0)) from None
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError(path, missing_plugin(path)
                          or "not an image file Pillow can read (wrong extension or corrupt header)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(path, f"corrupt or truncated image data ({printable(exc)})") from None
    except MemoryError:
        raise DecodeError(path, "not enough memory to decode it") from None


def _oriented(decoded: DecodedImage, orientation: int) -> DecodedImage:
    if orientation in (1, 0) or orientation > 8:
        return decoded
    color = _orient(decoded.color, orientation)
    alpha = _orient(decoded.alpha, orientation) if decoded.alpha is not None else None
    return replace(decoded, color=color, alpha=alpha)
