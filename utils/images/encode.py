"""Encode one IMAGE into PNG (8/16-bit), JPEG, WebP or TIFF (8/16-bit), with the workflow embedded.

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
from PIL import Image
from PIL.PngImagePlugin import PngInfo

PNG_COMPRESS_LEVEL = 4  # what ComfyUI's SaveImage uses
JPEG_BACKGROUND = (255, 255, 255)  # JPEG has no alpha: transparent pixels are composited on white


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


def write_png16(fh: BinaryIO, pixels: np.ndarray, metadata: dict[str, str]) -> None:
    """16-bit RGB/RGBA PNG (filter 'Up' on every row), text chunks before the pixels."""
    height, width, channels = pixels.shape
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type Up
    filtered[0, 1:] = rows[0]
    filtered[1:, 1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG wants
    colour_type = 6 if channels == 4 else 2
    fh.write(b"\x89PNG\r\n\x1a\n")
    fh.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)))
    for kind, data in png_text_chunks(metadata):
        fh.write(_png_chunk(kind, data))
    fh.write(_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_COMPRESS_LEVEL)))
    fh.write(_png_chunk(b"IEND", b""))


def write_tiff16(fh: BinaryIO, pixels: np.ndarray) -> None:
    """Uncompressed baseline TIFF, 16 bits per sample, RGB or RGBA (unassociated alpha)."""
    height, width, channels = pixels.shape
    data = pixels.astype("<u2").tobytes()
    entries: list[tuple[int, int, int, int | bytes]] = []  # tag, type, count, value
    bits = struct.pack("<" + "H" * channels, *([16] * channels))
    ifd_offset = 8
    n_tags = 10 + (1 if channels == 4 else 0)
    ifd_size = 2 + n_tags * 12 + 4
    bits_offset = ifd_offset + ifd_size
    pixel_offset = bits_offset + len(bits)
    entries += [
        (256, 4, 1, width),                 # ImageWidth
        (257, 4, 1, height),                # ImageLength
        (258, 3, channels, bits_offset),    # BitsPerSample (stored after the IFD)
        (259, 3, 1, 1),                     # Compression: none
        (262, 3, 1, 2),                     # Photometric: RGB
        (273, 4, 1, pixel_offset),          # StripOffsets
        (277, 3, 1, channels),              # SamplesPerPixel
        (278, 4, 1, height),                # RowsPerStrip
        (279, 4, 1, len(data)),             # StripByteCounts
        (284, 3, 1, 1),                     # PlanarConfiguration: chunky
    ]
    if channels == 4:
        entries.append((338, 3, 1, 2))      # ExtraSamples: unassociated alpha
    fh.write(b"II*\x00" + struct.pack("<I", ifd_offset))
    fh.write(struct.pack("<H", len(entries)))
    for tag, typ, count, value in sorted(entries):
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 and count == 1 else struct.pack("<I", value)
        fh.write(struct.pack("<HHI", tag, typ, count) + packed)
    fh.write(struct.pack("<I", 0))
    fh.write(bits)
    fh.write(data)


def _flatten_on_background(pixels: np.ndarray) -> np.ndarray:
    rgb, alpha = pixels[..., :3].astype(np.float32), pixels[..., 3:4].astype(np.float32) / 255.0
    bg = np.array(JPEG_BACKGROUND, dtype=np.float32)
    return (rgb * alpha + bg * (1.0 - alpha) + 0.5).astype(np.uint8)


def webp_exif(metadata: dict[str, str]) -> Image.Exif:
    """ComfyUI's own WebP convention: prompt in Model (0x0110), the rest from Make (0x010f) down."""
    exif = Image.Exif()
    tag = 0x010F
    for key, value in metadata.items():
        if key == "prompt":
            exif[0x0110] = f"prompt:{value}"
        else:
            exif[tag] = f"{key}:{value}"
            tag -= 1
    return exif


def workflow_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """Text entries SaveImage embeds: "prompt" plus every extra_pnginfo key (the workflow)."""
    meta: dict[str, str] = {}
    if prompt is not None:
        meta["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        meta[key] = json.dumps(value)
    return meta


def encode(fh: BinaryIO, pixels: np.ndarray, file_format: str, quality: int, metadata: dict[str, str]) -> None:
    """Write pixels (uint8 or uint16, RGB or RGBA) to fh in file_format."""
    sixteen = pixels.dtype == np.uint16
    if file_format == "png" and sixteen:
        write_png16(fh, pixels, metadata)
        return
    if file_format == "tiff" and sixteen:
        write_tiff16(fh, pixels)
        return
    if sixteen:  # JPEG and WebP are 8-bit formats
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if file_format == "jpg" and pixels.shape[2] == 4:
        pixels = _flatten_on_background(pixels)
    img = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    if file_format == "png":
        info = PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
        img.save(fh, format="PNG", pnginfo=info if metadata else None, compress_level=PNG_COMPRESS_LEVEL)
    elif file_format == "jpg":
        img.save(fh, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif file_format == "webp":
        extra = {"exif": webp_exif(metadata)} if metadata else {}
        img.save(fh, format="WEBP", quality=quality, lossless=quality >= 100, method=4, **extra)
    elif file_format == "tiff":
        img.save(fh, format="TIFF", compression="tiff_deflate")
    else:
        raise ValueError(f"unknown file_format {file_format!r}")
