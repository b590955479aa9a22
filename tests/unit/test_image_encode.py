from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from batch_image_processing.utils.images.decode import decode_image
from batch_image_processing.utils.images.encode import encode, to_pixels, workflow_metadata
from batch_image_processing.utils.images.exif import with_workflow
from batch_image_processing.utils.images.tensors import to_tensors
from PIL import Image


def gradient_image(width: int = 300, height: int = 2) -> torch.Tensor:
    ramp = torch.linspace(0, 1, width)
    img = torch.stack([ramp, 1 - ramp, torch.full_like(ramp, 0.5)], dim=-1)
    return img.unsqueeze(0).expand(height, -1, -1).contiguous()


def save(tmp_path: Path, name: str, pixels: np.ndarray, fmt: str, quality: int = 95, meta: dict | None = None) -> Path:
    path = tmp_path / name
    with open(path, "wb") as fh:
        encode(fh, pixels, fmt, quality, meta or {})
    return path


def test_to_pixels_rounds_and_clips() -> None:
    img = torch.tensor([[[0.0, 0.5, 1.2], [-0.1, 1 / 255, 254.6 / 255]]])
    assert to_pixels(img, 8).tolist() == [[[0, 128, 255], [0, 1, 255]]]
    assert to_pixels(img, 16)[0, 0].tolist() == [0, 32768, 65535]
    assert to_pixels(torch.zeros(2, 3, 1), 8).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        to_pixels(torch.zeros(2, 2, 2), 8)


def test_png16_round_trips_the_precision_of_the_image(tmp_path: Path) -> None:
    img = gradient_image()
    pixels = to_pixels(img, 16)
    path = save(tmp_path, "g16.png", pixels, "png", meta={"workflow": '{"a": 1}'})
    decoded, _ = to_tensors(decode_image(str(path)))
    assert torch.equal(decoded[0], torch.from_numpy(pixels.astype(np.float32) / 65535))
    assert (decoded[0] - img).abs().max() <= 0.5 / 65535 + 1e-7
    with Image.open(path) as check:  # a standard PNG that other readers accept, with the text chunk
        assert check.info["workflow"] == '{"a": 1}'
        assert check.size == (300, 2)
    eight = save(tmp_path, "g8.png", to_pixels(img, 8), "png")
    assert len(np.unique(np.asarray(Image.open(eight))[..., 0])) <= 256 < len(np.unique(pixels[..., 0]))


def test_png16_rgba_keeps_alpha(tmp_path: Path) -> None:
    img = torch.rand(5, 7, 4)
    pixels = to_pixels(img, 16)
    path = save(tmp_path, "a16.png", pixels, "png")
    decoded = decode_image(str(path))
    assert np.array_equal(decoded.color, pixels[..., :3]) and np.array_equal(decoded.alpha, pixels[..., 3])


def test_tiff16_is_a_valid_tiff_with_exact_samples(tmp_path: Path) -> None:
    pixels = to_pixels(gradient_image(40, 3), 16)
    path = save(tmp_path, "t16.tiff", pixels, "tiff")
    with Image.open(path) as check:
        assert check.format == "TIFF" and check.size == (40, 3)
        check.load()
    raw = path.read_bytes()
    assert raw[:4] == b"II*\x00"
    assert raw.endswith(pixels.astype("<u2").tobytes())


def test_tiff8_png8_round_trip_exactly(tmp_path: Path) -> None:
    pixels = to_pixels(torch.rand(6, 9, 3), 8)
    for fmt in ("png", "tiff"):
        path = save(tmp_path, f"x.{fmt}", pixels, fmt)
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), pixels), fmt


def test_jpeg_quality_changes_size_and_alpha_is_composited_on_white(tmp_path: Path) -> None:
    noise = to_pixels(torch.rand(64, 64, 3), 8)
    small = save(tmp_path, "q10.jpg", noise, "jpg", quality=10).stat().st_size
    large = save(tmp_path, "q100.jpg", noise, "jpg", quality=100).stat().st_size
    assert small * 3 < large
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half, opaque on the right
    rgba[:, 4:, 3] = 255
    path = save(tmp_path, "alpha.jpg", rgba, "jpg", quality=100)
    back = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert (np.abs(back[:, :2] - [255, 255, 255]) <= 3).all(), "transparent pixels must be white, not black"
    assert (np.abs(back[:, 6:] - [255, 0, 0]) <= 3).all()


def test_webp_lossless_at_100_and_workflow_in_exif(tmp_path: Path) -> None:
    pixels = to_pixels(torch.rand(16, 16, 3), 8)
    meta = workflow_metadata({"1": {"class_type": "X"}}, {"workflow": {"nodes": []}})
    path = save(tmp_path, "l.webp", pixels, "webp", quality=100, meta=meta)
    with Image.open(path) as check:
        assert np.array_equal(np.asarray(check.convert("RGB")), pixels)
        exif = check.getexif()
    assert exif[0x0110] == 'prompt:{"1": {"class_type": "X"}}'
    assert exif[0x010F] == 'workflow:{"nodes": []}'
    lossy = save(tmp_path, "q.webp", pixels, "webp", quality=50)
    assert not np.array_equal(np.asarray(Image.open(lossy).convert("RGB")), pixels)


def test_workflow_metadata_matches_saveimage() -> None:
    meta = workflow_metadata({"1": {}}, {"workflow": {"a": "é"}})
    assert json.loads(meta["workflow"]) == {"a": "é"} and set(meta) == {"prompt", "workflow"}
    assert workflow_metadata(None, None) == {}
    exif, xmp = with_workflow(None, {"prompt": "{}", "workflow": "{}", "other": "1"})
    assert exif is not None and len(exif) == 3 and xmp is None


def test_sixteen_bit_pixels_become_8_bit_for_jpeg(tmp_path: Path) -> None:
    pixels = np.full((4, 4, 3), 65535, dtype=np.uint16)
    buf = io.BytesIO()
    encode(buf, pixels, "jpg", 100, {})
    assert np.asarray(Image.open(io.BytesIO(buf.getvalue()))).min() >= 252
