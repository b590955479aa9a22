"""Batch Image Saver in a real ComfyUI: names, subfolders, metadata, overwrite modes, safety."""

from __future__ import annotations

from pathlib import Path

import imagefiles as img
import numpy as np
from harness import ComfyClient, ComfyServer
from helpers import batch_runs, png_workflow
from PIL import Image
from workflows import loader_node, loader_to_saver, saver_node


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_mirrors_names_and_subfolders_with_workflow_and_skip_existing(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"  # absolute, outside ComfyUI, created by the saver
    img.write_solid(input_folder / "top.jpg", (200, 10, 10))
    (input_folder / "2024" / "beach").mkdir(parents=True)
    img.write_solid(input_folder / "2024" / "beach_001.jpg", (10, 200, 10))
    img.write_solid(input_folder / "2024" / "beach" / "wave.webp", (10, 10, 200))
    (out / "2024").mkdir(parents=True)
    (out / "2024" / "beach_001.png").write_bytes(b"precious earlier result")

    workflow = {"saver_test": True}
    client.queue_prompt(loader_to_saver(str(input_folder), str(out), loader={"include_subfolders": True},
                                        overwrite_mode="Skip existing"), workflow=workflow)
    client.wait_idle()
    assert tree(out) == ["2024/beach/wave.png", "2024/beach_001.png", "top.png"]
    assert (out / "2024" / "beach_001.png").read_bytes() == b"precious earlier result"
    for name in ("top.png", "2024/beach/wave.png"):
        assert png_workflow(out / name) == workflow
    inverted = np.asarray(Image.open(out / "top.png"))[0, 0].astype(int)
    assert np.abs(inverted - [55, 245, 245]).max() <= 4  # ImageInvert of the (JPEG) input
    runs = batch_runs(client, str(input_folder))
    assert len(runs) == 3 and all(r.status == "success" for r in runs)
    # Previews for a folder outside ComfyUI's output folder come from the temp folder.
    assert all(r.saved and r.saved[0].startswith("batch_preview_") for r in runs)

    # Run again with Add number: nothing is overwritten, numbered copies appear.
    client.queue_prompt(loader_to_saver(str(input_folder), str(out), loader={"include_subfolders": True}))
    client.wait_idle()
    assert tree(out) == ["2024/beach/wave.png", "2024/beach/wave_1.png", "2024/beach_001.png",
                         "2024/beach_001_1.png", "top.png", "top_1.png"]


def test_hostile_names_never_leave_the_output_folder(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "safe" / "out"
    img.write_solid(input_folder / "x.png", (1, 2, 3))
    prompt = {
        "1": loader_node(str(input_folder)),
        "3": saver_node(["1", 0], str(out), filename="../../../escape.png", relative_path="../../up/C:\\win",
                        filename_prefix="../", filename_suffix="/..\\", file_format="jpg"),
    }
    client.queue_prompt(prompt)
    client.wait_idle()
    assert tree(tmp_path) == ["safe/out/up/C_/win/_escape_.._.jpg"]


def test_sixteen_bit_png_round_trips_end_to_end(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    source = img.write_rgb16_png(input_folder / "deep.png", 64, 3)
    out = tmp_path / "o16"
    prompt = {"1": loader_node(str(input_folder)),
              "3": saver_node(["1", 0], str(out), bit_depth="16", file_format="same as input")}
    client.queue_prompt(prompt)
    client.wait_idle()
    raw = (out / "deep.png").read_bytes()
    assert raw[24] == 16, "not a 16-bit PNG"
    import torch
    from torchvision.io import ImageReadMode, decode_png  # the test venv is ComfyUI's: torchvision is there

    back = decode_png(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    back_np = back.permute(1, 2, 0).contiguous().view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(back_np, source)


def test_unlinked_filename_gets_numbered_names_in_comfyui_output(
    client: ComfyClient, input_folder: Path, output_folder: Path, test_name: str
) -> None:
    for i in range(2):
        img.write_solid(input_folder / f"n{i}.png", (i, i, i))
    prompt = {"1": loader_node(str(input_folder)),
              "3": saver_node(["1", 0], test_name, filename="", relative_path="")}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert tree(output_folder) == ["image_1.png", "image_2.png"]
    runs = batch_runs(client, str(input_folder))
    assert [r.saved for r in runs] == [["image_1.png"], ["image_2.png"]]  # previews served from output/


def test_saving_into_the_input_folder_never_touches_the_originals(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path
) -> None:
    img.write_png(input_folder / "orig.png", 8, 8, seed=4)
    before = (input_folder / "orig.png").read_bytes()
    prompt = {"1": loader_node(str(input_folder)), "3": saver_node(["1", 0], str(input_folder))}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert (input_folder / "orig.png").read_bytes() == before
    assert (input_folder / "orig_1.png").is_file()

    (input_folder / "orig_1.png").unlink()
    prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    prompt["3"] = saver_node(["2", 0], str(input_folder), overwrite_mode="Overwrite")
    client.queue_prompt(prompt)
    client.wait_idle()
    assert (input_folder / "orig.png").read_bytes() != before, "Overwrite on the same path replaces it"
    assert f"overwriting the input file '{input_folder / 'orig.png'}'" in comfy_server.log_text()
