"""16-bit RGB, RGBA and gray+alpha TIFF with all 16 bits (Pillow reduces these to 8 bits).

Pillow reads 16-bit single-channel TIFF at full depth, through libtiff, with every compression
libtiff knows. So the file's first directory is rewritten in memory to describe the same bytes
as one gray channel C times as wide (a row of W pixels of C 16-bit samples is a row of C*W
16-bit gray samples), Pillow decodes that, and the result is folded back into W x C. libtiff
undoes the horizontal predictor per pixel, not per sample, so the predictor is switched off
in the copy and undone here. Anything unusual (planar layout, BigTIFF, float samples) returns
None and Pillow decodes it as before.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from .. import log

_WIDTH, _BITS, _PHOTOMETRIC, _SPP, _PLANAR, _PREDICTOR, _TILE_WIDTH, _EXTRA, _FORMAT = (
    256, 258, 262, 277, 284, 317, 322, 338, 339)
_SHORT, _LONG = 3, 4


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _layout(img: Image.Image) -> tuple[int, bool] | None:
    """(samples per pixel, has alpha) when img is a chunky 16-bit unsigned RGB(A) or gray+alpha TIFF."""
    tags = img.tag_v2
    spp = int(tags.get(_SPP, 1))
    photometric = tags.get(_PHOTOMETRIC)
    if not ((photometric == 2 and spp in (3, 4)) or (photometric == 1 and spp == 2)):
        return None
    bits, formats = _as_tuple(tags.get(_BITS, 1)), _as_tuple(tags.get(_FORMAT, 1))
    if set(bits) != {16} or set(formats) != {1} or tags.get(_PLANAR, 1) != 1:
        return None
    extra = _as_tuple(tags.get(_EXTRA, 0))
    return spp, spp in (2, 4) and extra[0] in (1, 2)


def _gray_copy(data: bytes, spp: int) -> tuple[bytes, int, int | None] | None:
    """The file with its first directory describing one 16-bit gray channel spp times as wide.

    Returns (file, predictor, tile width) or None for a layout this does not handle (BigTIFF).
    """
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        return None
    out = bytearray(data)
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    entries = [bytearray(data[ifd + 2 + 12 * i: ifd + 14 + 12 * i]) for i in range(count)]
    next_ifd = data[ifd + 2 + 12 * count: ifd + 6 + 12 * count]
    predictor, tile_width, kept = 1, None, []

    def inline(entry: bytearray, kind: int, value: int) -> None:
        packed = struct.pack(order + "H", value) + b"\0\0" if kind == _SHORT else struct.pack(order + "I", value)
        entry[2:12] = struct.pack(order + "HI", kind, 1) + packed

    def value_of(entry: bytearray) -> int:
        if struct.unpack(order + "H", entry[2:4])[0] == _SHORT:
            return struct.unpack(order + "H", entry[8:10])[0]
        return struct.unpack(order + "I", entry[8:12])[0]

    for entry in entries:
        tag = struct.unpack(order + "H", entry[:2])[0]
        if tag == _EXTRA:
            continue  # dropped: one gray channel has no extra samples
        if tag in (_WIDTH, _TILE_WIDTH):
            width = value_of(entry)
            tile_width = width if tag == _TILE_WIDTH else tile_width
            inline(entry, _LONG, width * spp)
        elif tag == _PREDICTOR:
            predictor = value_of(entry)
            inline(entry, _SHORT, 1)
        elif tag in (_BITS, _SPP, _PHOTOMETRIC, _FORMAT):
            inline(entry, _SHORT, {_BITS: 16, _SPP: 1, _PHOTOMETRIC: 1, _FORMAT: 1}[tag])
        kept.append(entry)
    out[ifd:ifd + 2] = struct.pack(order + "H", len(kept))
    out[ifd + 2: ifd + 2 + 12 * len(kept)] = b"".join(kept)
    out[ifd + 2 + 12 * len(kept): ifd + 6 + 12 * len(kept)] = next_ifd
    return bytes(out), predictor, tile_width


def _undo_predictor(arr: np.ndarray, tile_width: int | None) -> None:
    """Horizontal differencing (TIFF predictor 2) back to values, per row of each strip or tile."""
    step = tile_width or arr.shape[1]
    for x0 in range(0, arr.shape[1], step):
        arr[:, x0:x0 + step] = np.cumsum(arr[:, x0:x0 + step], axis=1, dtype=np.uint16)


def decode_tiff16(path: str, img: Image.Image) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(color HxWxC, alpha HxW or None) as uint16 for a 16-bit colour TIFF opened as img; None
    for any other TIFF (and for one this cannot read: Pillow then decodes it, with 8 bits)."""
    layout = _layout(img)
    if layout is None:
        return None
    spp, has_alpha = layout
    width, height = img.size
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        copy = _gray_copy(data, spp)
    except (struct.error, IndexError, KeyError):  # a directory Pillow read but this cannot: Pillow decodes it
        copy = None
    if copy is None:
        return None
    gray_file, predictor, tile_width = copy
    try:
        with Image.open(io.BytesIO(gray_file)) as gray:
            gray.load()
            arr = np.asarray(gray).astype(np.uint16)
    except (OSError, ValueError, SyntaxError) as exc:
        log.warning("'%s': 16-bit TIFF read with 8 bits only (%s)", path, exc)
        return None
    arr = arr.reshape(height, width, spp)
    if predictor == 2:
        _undo_predictor(arr, tile_width)
    elif predictor != 1:
        return None
    color_channels = 1 if spp == 2 else 3
    color = arr[..., :color_channels]
    if not has_alpha:
        return color, None
    alpha = arr[..., color_channels]
    if _as_tuple(img.tag_v2.get(_EXTRA, 0))[0] == 1:  # associated (premultiplied) alpha: undo it
        scaled = color.astype(np.float64) * 65535.0 / np.maximum(alpha, 1)[..., None]
        color = np.where(alpha[..., None] > 0, np.clip(scaled + 0.5, 0, 65535), 0).astype(np.uint16)
    return color, alpha
