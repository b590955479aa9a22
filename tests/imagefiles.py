"""Real image files for tests: every odd kind a user's folder holds, made on the fly."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def rgb_noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_png(path: Path, width: int = 16, height: int = 12, seed: int = 0) -> np.ndarray:
    """RGB noise PNG; returns the pixels."""
    arr = rgb_noise(width, height, seed)
    Image.fromarray(arr, "RGB").save(path)
    return arr


def write_solid(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (8, 8), **save: object) -> None:
    Image.new("RGB", size, rgb).save(path, **save)


def write_rgba_png(path: Path, width: int = 8, height: int = 6) -> np.ndarray:
    """RGBA with an alpha ramp across x; returns the RGBA pixels."""
    arr = np.zeros((height, width, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 1] = 100
    arr[..., 2] = 50
    arr[..., 3] = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    Image.fromarray(arr, "RGBA").save(path)
    return arr


def write_la_png(path: Path) -> np.ndarray:
    arr = np.zeros((4, 5, 2), dtype=np.uint8)
    arr[..., 0] = 77
    arr[..., 1] = [[0, 64, 128, 192, 255]] * 4
    Image.fromarray(arr, "LA").save(path)
    return arr


def write_palette_transparent(path: Path, suffix_format: str = "PNG") -> None:
    """Palette image: index 0 red and transparent, index 1 green opaque; left half transparent."""
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    img.putdata([0, 0, 1, 1, 0, 0, 1, 1])
    img.save(path, format=suffix_format, transparency=0)


def write_gray16_png(path: Path, width: int = 256, height: int = 2) -> np.ndarray:
    """16-bit grayscale gradient 0..65535 (Pillow mode I;16); a /255 decoder clips it."""
    arr = np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1))
    Image.fromarray(arr).save(path)
    return arr


def png16_bytes(arr: np.ndarray) -> bytes:
    """A 16-bit RGB (HxWx3) or RGBA (HxWx4) PNG, written by hand: Pillow cannot write these."""
    height, width, channels = arr.shape
    colour_type = {3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_rgb16_png(path: Path, width: int = 64, height: int = 3, alpha: bool = False) -> np.ndarray:
    """16-bit RGB(A) whose values differ from each other only in the low byte."""
    arr = np.zeros((height, width, 4 if alpha else 3), dtype=np.uint16)
    ramp = (np.arange(width, dtype=np.uint32) * 7 + 1000).astype(np.uint16)
    arr[..., 0] = ramp
    arr[..., 1] = 65535 - ramp
    arr[..., 2] = 32768
    if alpha:
        arr[..., 3] = np.linspace(0, 65535, width).astype(np.uint16)[None, :]
    path.write_bytes(png16_bytes(arr))
    return arr


def write_exif_jpeg(path: Path, orientation: int) -> Image.Image:
    """A 6x4 JPEG with a white top-left corner block and the given EXIF orientation.

    Returns the image as stored (before orientation), for comparing with exif_transpose.
    """
    img = Image.new("RGB", (6, 4), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 3, 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=100, exif=exif.tobytes(), subsampling=0)
    return img


def write_cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK


def write_multiframe_gif(path: Path) -> None:
    frames = [Image.new("RGB", (5, 5), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)


def write_float_tiff(path: Path) -> np.ndarray:
    arr = np.array([[-0.5, 0.0, 0.25, 0.5, 1.0, 2.0]], dtype=np.float32)
    Image.fromarray(arr, "F").save(path)
    return arr


def write_bilevel_png(path: Path) -> None:
    img = Image.new("1", (4, 1))
    img.putdata([0, 1, 0, 1])
    img.save(path)


def write_zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def write_text_as_image(path: Path) -> None:
    path.write_text("this is not an image, just text with an image extension\n")


def write_truncated_png(path: Path) -> None:
    full = Path(str(path) + ".full.png")
    write_png(full, 64, 64, seed=3)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])


def tiff_lzw(data: bytes) -> bytes:
    """TIFF's LZW (MSB-first codes, 9 to 12 bits, "early change"), as libtiff writes it."""
    out, acc, nbits = bytearray(), 0, 0

    def emit(code: int, width: int) -> None:
        nonlocal acc, nbits
        acc, nbits = (acc << width) | code, nbits + width
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)

    table = {bytes([i]): i for i in range(256)}
    next_code, width = 258, 9
    emit(256, width)
    current = b""
    for byte in data:
        candidate = current + bytes([byte])
        if candidate in table:
            current = candidate
            continue
        emit(table[current], width)
        table[candidate] = next_code
        next_code += 1
        if next_code == 4094:
            emit(256, width)
            table, next_code, width = {bytes([i]): i for i in range(256)}, 258, 9
        elif next_code in (512, 1024, 2048):
            width += 1
        current = bytes([byte])
    if current:
        emit(table[current], width)
        next_code += 1
        if next_code in (512, 1024, 2048):
            width += 1
    emit(257, width)
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return bytes(out)


def tiff16_bytes(arr: np.ndarray, order: str = "<", compression: str = "none", predictor: int = 1,
                 rows_per_strip: int | None = None, tile: int | None = None, extra: int = 2) -> bytes:
    """A 16-bit RGB/RGBA TIFF (HxWx3 or HxWx4 uint16) as other programs write them: either byte
    order, uncompressed, deflate or LZW, with or without the horizontal predictor, strips or tiles."""
    height, width, spp = arr.shape
    blocks: list[np.ndarray] = []
    if tile:
        for ty in range(0, height, tile):
            for tx in range(0, width, tile):
                block = np.zeros((tile, tile, spp), dtype=np.uint16)
                part = arr[ty:ty + tile, tx:tx + tile]
                block[:part.shape[0], :part.shape[1]] = part
                blocks.append(block)
    else:
        rps = rows_per_strip or height
        blocks = [arr[y:y + rps] for y in range(0, height, rps)]
    payloads = []
    for block in blocks:
        block = block.astype(np.uint16)
        if predictor == 2:
            block = block.copy()
            block[:, 1:] = block[:, 1:] - block[:, :-1]  # wraps modulo 65536, as TIFF wants
        raw = block.astype(order + "u2").tobytes()
        payloads.append({"none": raw, "deflate": zlib.compress(raw), "lzw": tiff_lzw(raw)}[compression])
    code = {"none": 1, "deflate": 8, "lzw": 5}[compression]
    n = len(payloads)
    tags: list[tuple[int, int, list[int]]] = [
        (256, 4, [width]), (257, 4, [height]), (258, 3, [16] * spp), (259, 3, [code]), (262, 3, [2]),
        (277, 3, [spp]), (284, 3, [1]), (339, 3, [1] * spp),
    ]
    if predictor != 1:
        tags.append((317, 3, [predictor]))
    if spp == 4:
        tags.append((338, 3, [extra]))
    if tile:
        tags += [(322, 3, [tile]), (323, 3, [tile]), (324, 4, [0] * n), (325, 4, [len(p) for p in payloads])]
    else:
        tags += [(273, 4, [0] * n), (278, 4, [rows_per_strip or height]), (279, 4, [len(p) for p in payloads])]
    tags.sort()
    offsets_tag = 324 if tile else 273
    ifd_size = 2 + 12 * len(tags) + 4
    extra_area = bytearray()
    base = 8 + ifd_size

    def packed(kind: int, values: list[int]) -> bytes:
        return struct.pack(order + ("H" if kind == 3 else "I") * len(values), *values)

    data_start = base + sum(len(packed(k, v)) for _, k, v in tags if len(packed(k, v)) > 4) + 64
    offsets, pos = [], data_start
    for p in payloads:
        offsets.append(pos)
        pos += len(p)
    entries = b""
    for tag, kind, values in tags:
        values = offsets if tag == offsets_tag else values
        body = packed(kind, values)
        if len(body) <= 4:
            entries += struct.pack(order + "HHI", tag, kind, len(values)) + body.ljust(4, b"\0")
        else:
            entries += struct.pack(order + "HHII", tag, kind, len(values), base + len(extra_area))
            extra_area += body
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    out = head + struct.pack(order + "H", len(tags)) + entries + b"\0\0\0\0" + bytes(extra_area)
    return out.ljust(data_start, b"\0") + b"".join(payloads)


def rgb16_ramp(width: int = 40, height: int = 20, alpha: bool = False) -> np.ndarray:
    """16-bit RGB(A) pixels whose values differ in the low byte (an 8-bit decoder loses them)."""
    rng = np.random.default_rng(5)
    return rng.integers(0, 65536, (height, width, 4 if alpha else 3), dtype=np.uint16)


def write_pixel_kinds(folder: Path, width: int = 5, height: int = 4) -> list[Path]:
    """RGB, RGBA, 16-bit RGB and gray PNGs of one size: every way a pixel reaches a batch tensor."""
    paths = [folder / n for n in ("rgb.png", "rgba.png", "deep.png", "gray.png")]
    write_png(paths[0], width, height, seed=1)
    write_rgba_png(paths[1], width, height)
    write_rgb16_png(paths[2], width, height)
    Image.new("L", (width, height), 77).save(paths[3])
    return paths
