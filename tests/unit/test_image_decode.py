"""Every odd file a user's folder holds, decoded to the pixel values the user sees."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
import torch
from batch_image_processing.utils.comfy import bridge as comfy_bridge
from batch_image_processing.utils.images.decode import MAX_PIXELS_ENV, DecodeError, decode_image
from batch_image_processing.utils.images.tensors import to_tensors
from PIL import Image, ImageOps


def load(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensors(decode_image(str(path)))


def test_rgb_png_exact_pixels_and_zero_mask_of_image_size(tmp_path: Path) -> None:
    arr = img.write_png(tmp_path / "a.png", 17, 9)
    image, mask = load(tmp_path / "a.png")
    assert image.shape == (1, 9, 17, 3) and image.dtype == torch.float32 and image.is_contiguous()
    assert torch.equal(image[0], torch.from_numpy(arr).float() / 255)
    assert mask.shape == (1, 9, 17) and not mask.any()


def test_rgba_mask_is_one_minus_alpha(tmp_path: Path) -> None:
    arr = img.write_rgba_png(tmp_path / "a.png")
    image, mask = load(tmp_path / "a.png")
    assert torch.allclose(mask[0], 1 - torch.from_numpy(arr[..., 3]).float() / 255)
    assert mask[0, 0, 0] == 1.0 and mask[0, 0, -1] == 0.0
    assert torch.allclose(image[0, 0, 0], torch.tensor([200, 100, 50]) / 255)


def test_la_gray_with_alpha(tmp_path: Path) -> None:
    arr = img.write_la_png(tmp_path / "la.png")
    image, mask = load(tmp_path / "la.png")
    assert torch.allclose(image[0], torch.full((4, 5, 3), 77 / 255))
    assert torch.allclose(mask[0], 1 - torch.from_numpy(arr[..., 1]).float() / 255)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_entry(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"p.{fmt.lower()}"
    img.write_palette_transparent(path, fmt)
    image, mask = load(path)
    assert mask[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    assert image[0, 0, 2].tolist() == [0, 1, 0]


def test_16bit_gray_gradient_does_not_clip(tmp_path: Path) -> None:
    arr = img.write_gray16_png(tmp_path / "g.png")
    image, _ = load(tmp_path / "g.png")
    expected = torch.from_numpy(arr.astype(np.float32) / 65535)
    assert torch.equal(image[0, ..., 0], expected) and torch.equal(image[0, ..., 2], expected)
    assert len(torch.unique(image)) == 256 and image.max() == 1.0
    assert 0.49 < image[0, 0, 128, 0] < 0.51  # a /255 decoder clips this to 1.0


def test_16bit_rgb_and_rgba_png_keep_all_16_bits(tmp_path: Path) -> None:
    rgb = img.write_rgb16_png(tmp_path / "c.png")
    image, mask = load(tmp_path / "c.png")
    assert torch.equal(image[0], torch.from_numpy(rgb.astype(np.float32) / 65535))
    assert not mask.any()
    rgba = img.write_rgb16_png(tmp_path / "ca.png", alpha=True)
    image, mask = load(tmp_path / "ca.png")
    assert torch.equal(mask[0], 1 - torch.from_numpy(rgba[..., 3].astype(np.float32)) / 65535)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_exif_transpose(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    img.write_exif_jpeg(path, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    image, mask = load(path)
    assert image.shape[1:3] == expected.shape[:2] == mask.shape[1:]
    assert torch.equal(image[0], torch.from_numpy(expected.copy()).float() / 255)


def test_cmyk_bilevel_float_bmp_tiff_and_first_frame(tmp_path: Path) -> None:
    img.write_cmyk_jpeg(tmp_path / "cmyk.jpg")
    image, _ = load(tmp_path / "cmyk.jpg")
    assert (image[0, 2, 3] - torch.tensor([1.0, 0.0, 0.0])).abs().max() < 0.03

    img.write_bilevel_png(tmp_path / "bw.png")
    image, _ = load(tmp_path / "bw.png")
    assert image[0, 0, :, 0].tolist() == [0, 1, 0, 1]

    img.write_float_tiff(tmp_path / "f.tif")
    image, _ = load(tmp_path / "f.tif")
    assert image[0, 0, :, 1].tolist() == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]

    for name in ("s.bmp", "s.tiff"):
        img.write_solid(tmp_path / name, (12, 34, 56))
        image, _ = load(tmp_path / name)
        assert torch.equal(image[0, 0, 0], torch.tensor([12, 34, 56]) / 255)

    img.write_multiframe_gif(tmp_path / "anim.gif")
    image, _ = load(tmp_path / "anim.gif")
    assert image[0, 2, 2].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (img.write_zero_byte, "empty (0 bytes)"),
        (img.write_text_as_image, "not an image file"),
        (img.write_truncated_png, "corrupt or truncated"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path: Path, writer, reason: str) -> None:
    path = tmp_path / "bad file.png"
    writer(path)
    with pytest.raises(DecodeError) as info:
        decode_image(str(path))
    assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_file_is_reported_as_gone(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="no longer exists"):
        decode_image(str(tmp_path / "gone.png"))


def test_pixel_limit_guards_and_env_var_raises_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img.write_png(tmp_path / "big.png", 100, 100)
    monkeypatch.setenv(MAX_PIXELS_ENV, "5000")
    with pytest.raises(DecodeError, match=f"100x100 = 10,000 pixels is above the limit of 5,000.*{MAX_PIXELS_ENV}"):
        decode_image(str(tmp_path / "big.png"))
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")
    assert decode_image(str(tmp_path / "big.png")).width == 100
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="is not a whole number"):
        decode_image(str(tmp_path / "big.png"))


def test_intermediate_device_and_dtype_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: a fake comfy.model_management says 'meta' device and fp16, like --gpu-only would say cuda."""
    calls = []
    fake = types.ModuleType("comfy.model_management")
    fake.intermediate_device = lambda: calls.append("device") or torch.device("meta")
    fake.intermediate_dtype = lambda: calls.append("dtype") or torch.float16
    comfy = types.ModuleType("comfy")
    comfy.model_management = fake
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", fake)
    device, dtype = comfy_bridge.tensor_target()
    assert calls == ["device", "dtype"]
    img.write_rgba_png(tmp_path / "a.png")
    image, mask = to_tensors(decode_image(str(tmp_path / "a.png")), device, dtype)
    assert image.device.type == mask.device.type == "meta"
    assert image.dtype == mask.dtype == torch.float16
    assert image.shape == (1, 6, 8, 3) and mask.shape == (1, 6, 8)
    del fake.intermediate_dtype  # older ComfyUI: no intermediate_dtype -> float32
    assert comfy_bridge.tensor_target()[1] == torch.float32
