"""16-bit colour TIFF at full depth, the pixel limit that really applies, and files that stopped
being images during a batch (folders, FIFOs, names that are not UTF-8)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from batch_image_processing.utils.images.decode import MAX_PIXELS_ENV, DecodeError, decode_image
from batch_image_processing.utils.images.encode import encode, write_tiff
from PIL import Image

TIFF_VARIANTS = {
    "uncompressed": {},
    "big-endian": {"order": ">"},
    "deflate+predictor, strips": {"compression": "deflate", "predictor": 2, "rows_per_strip": 3},
    "lzw": {"compression": "lzw"},
    "lzw+predictor, big-endian, strips": {"compression": "lzw", "predictor": 2, "order": ">", "rows_per_strip": 7},
    "deflate+predictor, tiles": {"compression": "deflate", "predictor": 2, "tile": 16},
    "lzw, tiles": {"compression": "lzw", "tile": 16},
}


@pytest.mark.parametrize("alpha", [False, True], ids=["RGB", "RGBA"])
@pytest.mark.parametrize("variant", list(TIFF_VARIANTS))
def test_16bit_colour_tiff_keeps_all_16_bits(tmp_path: Path, variant: str, alpha: bool) -> None:
    """Issue 11 #5: Pillow reads these as 8 bits; every low byte must survive."""
    source = img.rgb16_ramp(40, 20, alpha)
    path = tmp_path / "deep.tif"
    path.write_bytes(img.tiff16_bytes(source, **TIFF_VARIANTS[variant]))
    with Image.open(path) as pillow:
        assert pillow.mode in ("RGB", "RGBA"), "Pillow itself keeps only 8 bits of these"
    decoded = decode_image(str(path))
    assert decoded.scale == 65535.0 and decoded.color.dtype == np.uint16
    assert np.array_equal(decoded.color, source[..., :3])
    if alpha:
        assert decoded.alpha is not None and np.array_equal(decoded.alpha, source[..., 3])
    else:
        assert decoded.alpha is None


def test_premultiplied_alpha_is_undone(tmp_path: Path) -> None:
    straight = img.rgb16_ramp(8, 4, alpha=True)
    straight[..., 3] = 32768
    stored = straight.copy()
    stored[..., :3] = (straight[..., :3].astype(np.uint32) * 32768 // 65535).astype(np.uint16)
    path = tmp_path / "pre.tif"
    path.write_bytes(img.tiff16_bytes(stored, extra=1))
    decoded = decode_image(str(path))
    assert np.abs(decoded.color.astype(int) - straight[..., :3]).max() <= 2


@pytest.mark.parametrize("channels", [3, 4])
def test_the_packs_own_16bit_tiff_round_trips(tmp_path: Path, channels: int) -> None:
    source = img.rgb16_ramp(33, 7, alpha=channels == 4)
    buffer = io.BytesIO()
    encode(buffer, source, "tiff", 95, {})
    (tmp_path / "own.tiff").write_bytes(buffer.getvalue())
    decoded = decode_image(str(tmp_path / "own.tiff"))
    assert np.array_equal(decoded.color, source[..., :3])
    with open(tmp_path / "direct.tif", "wb") as fh:
        write_tiff(fh, source)
    assert np.array_equal(decode_image(str(tmp_path / "direct.tif")).color, source[..., :3])


def test_8bit_and_float_tiff_still_decode_as_before(tmp_path: Path) -> None:
    pixels = img.rgb_noise(9, 5)
    Image.fromarray(pixels).save(tmp_path / "eight.tif", compression="tiff_lzw")
    decoded = decode_image(str(tmp_path / "eight.tif"))
    assert decoded.scale == 255.0 and np.array_equal(decoded.color, pixels)


def write_gray_png(path: Path, width: int, height: int) -> None:
    """A large all-black 8-bit gray PNG, streamed: a few hundred kB on disk for ~180 megapixels."""
    squeeze = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_the_env_var_really_allows_more_than_pillows_own_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 #6: Pillow refuses anything above 2 x its limit (~179 MP) inside Image.open."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    assert pillow_limit is not None
    side = int((2 * pillow_limit) ** 0.5) + 2  # just above Pillow's hard ceiling
    path = tmp_path / "huge.png"
    write_gray_png(path, side, side)
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    with pytest.raises(DecodeError, match=f"above the limit of {pillow_limit:,} pixels \\(Pillow's default; "
                                          f"{MAX_PIXELS_ENV} is not set\\)"):
        decode_image(str(path))
    monkeypatch.setenv(MAX_PIXELS_ENV, str(side * side))
    decoded = decode_image(str(path))
    assert (decoded.width, decoded.height) == (side, side) and int(decoded.color[-1, -1, 0]) == 0
    del decoded
    assert Image.MAX_IMAGE_PIXELS == pillow_limit, "Pillow's own limit is put back"
    monkeypatch.setenv(MAX_PIXELS_ENV, str(side * side - 1))
    with pytest.raises(DecodeError, match=f"above the limit of {side * side - 1:,} pixels "
                                          f"\\({MAX_PIXELS_ENV}={side * side - 1}\\)"):
        decode_image(str(path))


def test_zero_means_no_limit_even_when_pillow_would_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above 2,000 pixels
    img.write_png(tmp_path / "p.png", 100, 30)  # 3,000 pixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "p.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")
    assert decode_image(str(tmp_path / "p.png")).width == 100
    monkeypatch.setenv(MAX_PIXELS_ENV, "2999")
    with pytest.raises(DecodeError, match=f"3,000 pixels is above the limit of 2,999 pixels \\({MAX_PIXELS_ENV}=2999"):
        decode_image(str(tmp_path / "p.png"))
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_an_image_replaced_by_a_folder_or_a_fifo_says_so(tmp_path: Path) -> None:
    """Issue 11 #10: these read as 'corrupt or truncated' and 'the file is empty' (a FIFO could even hang)."""
    (tmp_path / "was_image.png").mkdir()
    with pytest.raises(DecodeError, match=r"was_image\.png': it is a folder now, not an image file"):
        decode_image(str(tmp_path / "was_image.png"))
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(DecodeError, match=r"pipe\.png': it is not a regular file \(a FIFO"):
        decode_image(str(tmp_path / "pipe.png"))


def test_errors_about_non_utf8_names_can_be_printed(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff name.png")
    img.write_zero_byte(tmp_path / name)
    with pytest.raises(DecodeError) as info:
        decode_image(str(tmp_path / name))
    message = str(info.value)
    message.encode("utf-8")  # a console stream in strict UTF-8 can write it
    assert "bad\\xff name.png" in message and info.value.path == str(tmp_path / name)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_a_truncated_16bit_tiff_is_an_error_naming_the_file(tmp_path: Path, cut: float) -> None:
    data = img.tiff16_bytes(img.rgb16_ramp(40, 20), compression="lzw", rows_per_strip=4)
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: int(len(data) * cut)])
    try:
        decoded = decode_image(str(path))
    except DecodeError as exc:
        assert "cut.tif" in str(exc)
    else:  # libtiff may hand back what it could read: then it is still a full-size image
        assert decoded.color.shape == (20, 40, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_a_16bit_tiff_whose_directory_points_past_the_end_falls_back_or_names_the_file(tmp_path: Path) -> None:
    data = bytearray(img.tiff16_bytes(img.rgb16_ramp(8, 4)))
    data[4:8] = struct.pack("<I", len(data) + 100)  # first directory beyond the end of the file
    (tmp_path / "bad.tif").write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"bad\.tif"):
        decode_image(str(tmp_path / "bad.tif"))
