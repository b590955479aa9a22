"""Encode one IMAGE into PNG (8/16-bit), JPEG, WebP, AVIF or TIFF (8/16-bit), with the workflow,
the colour profile and the EXIF (utils/images/exif.py) embedded.

Pillow cannot write 16-bit RGB(A) PNG or TIFF, so those two are written here directly
(small, standard encoders); everything else goes through Pillow.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, TiffImagePlugin, TiffTags, features
from PIL.PngImagePlugin import PngInfo

from .. import log
from .exif import with_workflow

PNG_COMPRESS_LEVEL = 4  # what ComfyUI's SaveImage uses
JPEG_BACKGROUND = (255, 255, 255)  # JPEG has no alpha: transparent pixels are composited on white
JPEG_EXIF_LIMIT = 65_000  # one APP1 segment holds at most 65,533 bytes


def to_pixels(image: torch.Tensor, bit_depth: int) -> np.ndarray:
    """[H,W,C] float 0..1 -> HxWx3 or HxWx4 uint8/uint16, rounded (not truncated)."""
    if image.ndim != 3:
        raise ValueError(f"expected one image [H,W,C], got shape {tuple(image.shape)}")
    arr = image.detach().to("cpu", torch.float32).numpy()
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] not in (3, 4):
        raise ValueError(f"an IMAGE needs 1, 3 or 4 channels, this one has {arr.shape[2]}")
    top = 65535.0 if bit_depth == 16 else 255.0
    out = np.clip(arr, 0.0, 1.0) * top
    out += 0.5
    return out.astype(np.uint16 if bit_depth == 16 else np.uint8)


def png_text_chunks(metadata: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1", "replace")) for k, v in metadata.items()]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(fh: BinaryIO, pixels: np.ndarray, metadata: dict[str, str], icc_profile: bytes | None = None,
                exif: Image.Exif | None = None) -> None:
    """16-bit RGB/RGBA PNG (filter 'Up' on every row); profile, EXIF and text before the pixels."""
    height, width, channels = pixels.shape
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type Up
    filtered[0, 1:] = rows[0]
    filtered[1:, 1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG wants
    colour_type = 6 if channels == 4 else 2
    fh.write(b"\x89PNG\r\n\x1a\n")
    fh.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)))
    if icc_profile:
        fh.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif is not None:
        fh.write(_png_chunk(b"eXIf", exif.tobytes()[6:]))  # without the "Exif\0\0" of JPEG's APP1
    for kind, data in png_text_chunks(metadata):
        fh.write(_png_chunk(kind, data))
    fh.write(_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_COMPRESS_LEVEL)))
    fh.write(_png_chunk(b"IEND", b""))


def write_tiff(fh: BinaryIO, pixels: np.ndarray, icc_profile: bytes | None = None,
               exif: Image.Exif | None = None) -> None:
    """Baseline TIFF, 8 bits per sample deflated or 16 uncompressed (as before: fast to write),
    RGB or RGBA (unassociated alpha), with profile and EXIF (Pillow's own TIFF writer drops the
    EXIF sub-IFDs and cannot write 16-bit RGB); Pillow's tag writer lays out the directory, the
    pixels follow it."""
    height, width, channels = pixels.shape
    sixteen = pixels.dtype == np.uint16
    data = pixels.astype("<u2").tobytes() if sixteen else zlib.compress(pixels.tobytes(), PNG_COMPRESS_LEVEL)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, value in ((256, width), (257, height), (258, (16 if sixteen else 8,) * channels),
                       (259, 1 if sixteen else 8), (262, 2), (273, 0),
                       (277, channels), (278, height), (279, len(data)), (284, 1)):
        ifd[tag] = value
    if channels == 4:
        ifd[338] = 2  # ExtraSamples: unassociated alpha
    if icc_profile:
        ifd.tagtype[34675] = TiffTags.UNDEFINED
        ifd[34675] = icc_profile
    if exif is not None:
        for tag, value in exif.items():
            ifd[tag] = value
        for sub in (0x8769, 0x8825):
            if exif.get_ifd(sub):
                ifd[sub] = dict(exif.get_ifd(sub))
    fh.write(b"II*\x00" + struct.pack("<I", 8))
    fh.write(ifd.tobytes(8))  # StripOffsets (0 here) comes out pointing just after the directory
    fh.write(data)


def _flatten_on_background(pixels: np.ndarray) -> np.ndarray:
    rgb, alpha = pixels[..., :3].astype(np.float32), pixels[..., 3:4].astype(np.float32) / 255.0
    bg = np.array(JPEG_BACKGROUND, dtype=np.float32)
    return (rgb * alpha + bg * (1.0 - alpha) + 0.5).astype(np.uint8)


def workflow_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """Text entries SaveImage embeds: "prompt" plus every extra_pnginfo key (the workflow)."""
    meta: dict[str, str] = {}
    if prompt is not None:
        meta["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        meta[key] = json.dumps(value)
    return meta


def encode(fh: BinaryIO, pixels: np.ndarray, file_format: str, quality: int, metadata: dict[str, str],
           icc_profile: bytes | None = None, exif: Image.Exif | None = None) -> None:
    """Write pixels (uint8 or uint16, RGB or RGBA) to fh in file_format, tagged with icc_profile
    and exif when given (images not from the loader get neither, as before)."""
    sixteen = pixels.dtype == np.uint16
    if file_format == "png" and sixteen:
        write_png16(fh, pixels, metadata, icc_profile, exif)
        return
    if file_format == "tiff":
        write_tiff(fh, pixels, icc_profile, exif)
        return
    if sixteen:  # JPEG, WebP and AVIF are written 8-bit
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if file_format == "jpg" and pixels.shape[2] == 4:
        pixels = _flatten_on_background(pixels)
    img = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    extra: dict = {"icc_profile": icc_profile} if icc_profile else {}
    if file_format in ("webp", "avif"):  # the workflow lives in EXIF, as ComfyUI's frontend reads it
        exif, xmp = with_workflow(exif, metadata)
        if xmp:
            extra["xmp"] = xmp
    if file_format == "jpg" and exif is not None and len(exif.tobytes()) > JPEG_EXIF_LIMIT:
        log.warning("the EXIF of this image is too long for a JPEG (over 64 KB): written without it")
        exif = None
    if exif is not None:
        extra["exif"] = exif
    if file_format == "png":
        info = PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
        img.save(fh, format="PNG", pnginfo=info if metadata else None, compress_level=PNG_COMPRESS_LEVEL, **extra)
    elif file_format == "jpg":
        img.save(fh, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, **extra)
    elif file_format == "webp":
        img.save(fh, format="WEBP", quality=quality, lossless=quality >= 100, method=4, **extra)
    elif file_format == "avif":
        if not features.check("avif"):
            raise ValueError("this Pillow cannot write AVIF: update it in ComfyUI's Python "
                             "(python -m pip install -U pillow) or choose another file_format")
        img.save(fh, format="AVIF", quality=quality, **extra)
    else:
        raise ValueError(f"unknown file_format {file_format!r}")
