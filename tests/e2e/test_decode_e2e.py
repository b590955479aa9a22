"""A folder of every odd kind of file goes through a real ComfyUI; the MASK output is saved and checked."""

from __future__ import annotations

from pathlib import Path

import imagefiles as img
import numpy as np
from harness import ComfyClient
from helpers import batch_runs
from PIL import Image
from workflows import loader_node, saver_node


def test_every_kind_of_file_processes_and_masks_are_right(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    img.write_png(input_folder / "01_rgb.png", 10, 6)
    rgba = img.write_rgba_png(input_folder / "02_rgba.png")
    img.write_la_png(input_folder / "03_la.png")
    img.write_palette_transparent(input_folder / "04_palette.png")
    img.write_palette_transparent(input_folder / "05_palette.gif", "GIF")
    img.write_gray16_png(input_folder / "06_gray16.png")
    img.write_rgb16_png(input_folder / "07_rgb16.png")
    img.write_exif_jpeg(input_folder / "08_exif6.jpg", 6)
    img.write_cmyk_jpeg(input_folder / "09_cmyk.jpg")
    img.write_multiframe_gif(input_folder / "10_anim.gif")
    img.write_float_tiff(input_folder / "11_float.tif")
    img.write_bilevel_png(input_folder / "12_bilevel.png")
    img.write_solid(input_folder / "13_plain.bmp", (9, 8, 7))
    img.write_solid(input_folder / "14_plain.webp", (9, 8, 7), lossless=True)
    out = tmp_path / "out"
    prompt = {
        "1": loader_node(str(input_folder)),
        "3": saver_node(["1", 0], str(out)),
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 1]}},
        "6": saver_node(["5", 0], str(out / "masks")),
    }
    client.queue_prompt(prompt)
    client.wait_idle()
    runs = batch_runs(client, str(input_folder))
    assert [r.status for r in runs] == ["success"] * 14
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 14 and sorted(p.name for p in (out / "masks").glob("*.png")) == names

    def mask_of(name: str) -> np.ndarray:
        return np.asarray(Image.open(out / "masks" / name).convert("L")).astype(int)

    assert (np.abs(mask_of("02_rgba.png") - (255 - rgba[..., 3])) <= 1).all()
    assert mask_of("04_palette.png").tolist() == [[255, 255, 0, 0], [255, 255, 0, 0]]
    assert mask_of("05_palette.png").tolist() == [[255, 255, 0, 0], [255, 255, 0, 0]]
    assert not mask_of("01_rgb.png").any() and mask_of("01_rgb.png").shape == (6, 10)
    with Image.open(out / "08_exif6.png") as rotated:
        assert rotated.size == (4, 6)  # stored 6x4, EXIF orientation 6 turns it upright
    gray16 = np.asarray(Image.open(out / "06_gray16.png").convert("L"))
    assert 120 <= gray16[0, 128] <= 135, "the 16-bit gradient must not clip to white"
