"""Colour on load: an image's embedded ICC profile, converted to sRGB or kept.

Convert to sRGB: 8-bit RGB, gray and CMYK through LittleCMS (Pillow's ImageCms), one transform
per distinct profile, built once and reused; 16-bit RGB and gray with a matrix/TRC profile (every
camera, phone and display profile) in float from the profile (utils/images/icc.py), so their
precision stays. A 16-bit image with a LUT-based profile (rare) keeps its pixels and its profile:
the saver tags the result with it, so the colours stay right. Keep source: the pixels are those
of the file, and the result carries the source's profile. No profile means sRGB; a profile
LittleCMS cannot read is a warning naming the file, and the image is read as sRGB.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageCms

from .. import log
from ..log import printable
from . import icc

if TYPE_CHECKING:
    from .decode import DecodedImage

CONVERT_TO_SRGB, KEEP_SOURCE = "Convert to sRGB", "Keep source"
COLOR_PROFILE_MODES = (CONVERT_TO_SRGB, KEEP_SOURCE)
# Perceptual: what browsers and photo apps use to show a photo; for matrix/TRC profiles it is
# the same as relative colorimetric, for CMYK it maps the print gamut gracefully.
INTENT = ImageCms.Intent.PERCEPTUAL

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# LittleCMS stamps its creation time in the header (bytes 24..35): a fixed date instead keeps
# every result of the same input byte-identical, run after run.
SRGB_PROFILE: bytes = _SRGB.tobytes()[:24] + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + _SRGB.tobytes()[36:]
_SRGB_MATRIX = icc.matrix_trc(SRGB_PROFILE)
assert _SRGB_MATRIX is not None

_lock = threading.Lock()
_transforms: dict[tuple[bytes, str], ImageCms.ImageCmsTransform | None] = {}
_broken: dict[bytes, str] = {}  # digest -> why LittleCMS refused the profile
_BANDS = max(1, min(8, os.cpu_count() or 1))
_BAND_ROWS = 256  # below this, a band costs more to hand over than to convert
_executor: ThreadPoolExecutor | None = None
_kept_deep: set[bytes] = set()  # LUT-based profiles of deep images already reported
_float_paths: dict[tuple[bytes, str], tuple[list[np.ndarray], np.ndarray]] = {}


def _digest(profile: bytes) -> bytes:
    return hashlib.blake2b(profile, digest_size=16).digest()


def _transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """The cached LittleCMS transform from profile (pixels in mode) to sRGB RGB; raises
    ImageCms.PyCMSError (or ValueError) for a broken profile or one that does not fit mode."""
    key = (_digest(profile), mode)
    with _lock:
        if key in _transforms:
            cached = _transforms[key]
            if cached is None:
                raise ValueError(_broken.get(key[0], "unusable profile"))
            return cached
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        built = ImageCms.buildTransform(source, _SRGB, mode, "RGB", INTENT)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        with _lock:
            _transforms[key] = None
            _broken[key[0]] = printable(exc)
        raise ValueError(printable(exc)) from None
    with _lock:
        _transforms[key] = built
    return built


def _warn_broken(path: str, why: object) -> None:
    log.warning("'%s': its embedded colour profile cannot be used (%s); reading it as sRGB", path, why)


def convert_pil(img: Image.Image, profile: bytes | None, path: str) -> Image.Image:
    """A CMYK (or other non-RGB) PIL image converted to sRGB RGB through its profile; the
    naive conversion when it has none or a broken one."""
    if profile:
        try:
            return ImageCms.applyTransform(img, _transform(profile, img.mode))
        except (ValueError, ImageCms.PyCMSError) as exc:
            _warn_broken(path, exc)
    return img.convert("RGB")


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_BANDS, thread_name_prefix="batch-color")
        return _executor


def _convert8(color: np.ndarray, profile: bytes) -> np.ndarray:
    """8-bit pixels through LittleCMS, in bands of rows on several cores (it releases the GIL):
    a big photo converts in a fraction of the time one core takes."""
    mode = "L" if color.shape[2] == 1 else "RGB"
    transform = _transform(profile, mode)
    out = np.empty((*color.shape[:2], 3), dtype=np.uint8)
    bands = max(1, min(_BANDS, color.shape[0] // _BAND_ROWS))
    step = -(-color.shape[0] // bands)

    def band(top: int) -> None:
        part = np.ascontiguousarray(color[top:top + step, :, 0] if mode == "L" else color[top:top + step])
        out[top:top + step] = np.asarray(ImageCms.applyTransform(Image.fromarray(part, mode), transform))

    if bands == 1:
        band(0)
    else:
        list(_pool().map(band, range(0, color.shape[0], step)))
    return out


def _float_path(profile: bytes, matrix: icc.MatrixTRC) -> tuple[list[np.ndarray], np.ndarray]:
    """The profile's tone curves as 65536-entry tables and its matrix into linear sRGB, built once."""
    assert _SRGB_MATRIX is not None
    key = (_digest(profile), "float")
    with _lock:
        cached = _float_paths.get(key)
    if cached is None:
        luts = [matrix.linear_lut(c) for c in range(len(matrix.curves))]
        cached = luts, (np.linalg.inv(_SRGB_MATRIX.matrix) @ matrix.matrix).astype(np.float32)
        with _lock:
            _float_paths[key] = cached
    return cached


def _convert16(color: np.ndarray, profile: bytes, matrix: icc.MatrixTRC, scale: float) -> np.ndarray:
    """16-bit pixels through a matrix/TRC profile to sRGB, in float; uint16 out."""
    luts, to_srgb = _float_path(profile, matrix)
    if color.shape[2] == 1:  # gray: a neutral of the same luminance
        out = np.repeat(icc.encode_srgb(luts[0][color[..., 0]])[..., None], 3, axis=2)
    else:
        linear = np.stack([luts[c][color[..., c]] for c in range(3)], axis=-1)
        out = icc.encode_srgb(linear @ to_srgb.T)
    out *= scale
    out += 0.5
    return out.astype(np.uint16)


def _gray_as_rgb(profile: bytes) -> bytes:
    """An RGB profile showing r=g=b pixels as the gray profile shows gray (to tag a gray image
    kept in its own space and saved as RGB; a gray profile on an RGB file is invalid)."""
    assert _SRGB_MATRIX is not None
    curve = icc.tags(profile)[b"kTRC"]
    return icc.write_profile("Gray as RGB", _SRGB_MATRIX.matrix, (curve, curve, curve))


def apply_profile(decoded: DecodedImage, profile: bytes | None, path: str, mode: str) -> DecodedImage:
    """decoded (pixels as stored, with profile) in the colour space mode asks for, with the
    profile its result must carry in decoded.icc_profile."""
    if not profile:
        return replace(decoded, icc_profile=SRGB_PROFILE)
    try:
        space = icc.color_space(profile)
        matrix = icc.matrix_trc(profile)
        if space not in ("RGB", "GRAY") or (space == "GRAY" and decoded.color.shape[2] != 1):
            raise ValueError(f"a {space} profile on an image with {decoded.color.shape[2]} channel(s)")
        if space == "RGB" and decoded.color.shape[2] == 1:  # gray pixels, RGB profile: r = g = b
            if mode == KEEP_SOURCE:
                return replace(decoded, icc_profile=profile)  # the result is RGB: the profile fits it
            decoded = replace(decoded, color=np.repeat(decoded.color, 3, axis=2))
        if mode == KEEP_SOURCE:
            if space == "GRAY" and matrix is None:
                raise ValueError("a gray profile without a tone curve")
            return replace(decoded, icc_profile=_gray_as_rgb(profile) if space == "GRAY" else profile)
        if decoded.scale == 255.0:
            return replace(decoded, color=_convert8(decoded.color, profile), icc_profile=SRGB_PROFILE)
        if matrix is not None:  # 16-bit, or float (0..1) read at 16-bit precision
            deep = decoded.color if decoded.scale == 65535.0 else (decoded.color * 65535.0 + 0.5).astype(np.uint16)
            return replace(decoded, color=_convert16(deep, profile, matrix, 65535.0), scale=65535.0,
                           icc_profile=SRGB_PROFILE)
        if _digest(profile) not in _kept_deep:
            _kept_deep.add(_digest(profile))
            log.info("'%s': more than 8 bits with a LUT-based profile: kept in its own colour space at full "
                     "precision (the saved result carries that profile)", path)
        return replace(decoded, icc_profile=profile)
    except (ValueError, ImageCms.PyCMSError, struct.error, IndexError) as exc:
        _warn_broken(path, exc)
        return replace(decoded, icc_profile=SRGB_PROFILE)

