"""Batch Companion Loader and Batch Text Saver in a real ComfyUI: masks paired by name (never by
position), missing companions as error_handling says, captions read back exactly, text results
under the inputs' names."""

from __future__ import annotations

import codecs
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from harness import ComfyClient, ComfyServer
from helpers import batch_runs
from PIL import Image
from workflows import loader_node, saver_node

# image -> (mask gray value, image size); "b" has no mask, "zz" is a mask without an image.
IMAGES = {"a": (40, (8, 8)), "b": (0, (10, 6)), "c": (120, (8, 8)), "d": (200, (8, 8)), "sub/e": (250, (6, 4))}


def make_images_and_masks(images: Path, masks: Path) -> None:
    for name, (value, size) in IMAGES.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        img.write_solid(images / f"{name}.png", (90, 90, 90), size)
        if name != "b":
            (masks / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", size, value).save(masks / f"{name}_mask.png")
    Image.new("L", (8, 8), 255).save(masks / "zz_mask.png")  # extra: matches no image


def companion_node(folder: str, pattern: str, if_missing: str = "Follow error_handling") -> dict:
    return {"class_type": "BatchCompanionLoader",
            "inputs": {"relative_path": ["1", 4], "base_name": ["1", 3], "folder": folder, "pattern": pattern,
                       "if_missing": if_missing}}


def masks_workflow(images: Path, masks: Path, out: Path, error_handling: str, if_missing: str) -> dict:
    """loader -> companion mask -> MaskToImage -> Batch Image Saver under the image's name."""
    return {
        "1": loader_node(str(images), include_subfolders=True, error_handling=error_handling),
        "5": companion_node(str(masks), "{name}_mask.png", if_missing),
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 1]}},
        "3": saver_node(["6", 0], str(out)),
    }


def saved_values(out: Path) -> dict[str, tuple[int, tuple[int, int]]]:
    """Saved mask image -> (its one gray value, size); fails when a saved mask is not uniform."""
    found = {}
    for path in sorted(out.rglob("*.png")):
        arr = np.asarray(Image.open(path).convert("L"))
        assert arr.min() == arr.max(), f"{path.name} is not one mask's value"
        found[str(path.relative_to(out).with_suffix(""))] = (int(arr[0, 0]), (arr.shape[1], arr.shape[0]))
    return found


@pytest.mark.parametrize("error_handling, if_missing", [
    ("Stop on error", "Follow error_handling"),
    ("Skip on error", "Follow error_handling"),
    ("Stop on error", "Empty"),
])
def test_every_image_gets_its_own_mask_and_a_missing_one_is_handled_as_chosen(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path,
    error_handling: str, if_missing: str,
) -> None:
    images, masks, out = input_folder / "images", input_folder / "masks", tmp_path / "out"
    make_images_and_masks(images, masks)
    client.queue_prompt(masks_workflow(images, masks, out, error_handling, if_missing))
    client.wait_idle()
    expected = dict(IMAGES)
    runs = batch_runs(client, str(images))
    if if_missing == "Empty":  # b: a zero mask of b's own size
        assert saved_values(out) == expected
        assert [r.status for r in runs] == ["success"] * 5
    elif error_handling == "Skip on error":
        del expected["b"]
        assert saved_values(out) == expected
        assert [r.status for r in runs] == ["success"] * 5
        log = comfy_server.log_text()
        assert "4 processed, 1 skipped" in log
        assert f"  b.png: no companion for 'b.png': looked for '{masks / 'b_mask.png'}'" in log
    else:
        assert saved_values(out) == {"a": expected["a"]}
        assert [r.status for r in runs] == ["success", "error"]
        error = next(m[1] for m in runs[-1].messages if m[0] == "execution_error")
        assert error["node_type"] == "BatchCompanionLoader"
        assert f"no companion for 'b.png': looked for '{masks / 'b_mask.png'}'" in error["exception_message"]
        assert "Stop on error" in error["exception_message"]


CAPTIONS = {  # file bytes -> the text a person wrote
    "plain": (b"a cat, sitting", "a cat, sitting"),
    "bom_crlf": (codecs.BOM_UTF8 + "一只猫\r\n日本語のキャプション\r\n".encode(), "一只猫\n日本語のキャプション\n"),
    "sub/深い": ("ü ñ 🐈 – “quotes”".encode(), "ü ñ 🐈 – “quotes”"),
}


def test_captions_beside_the_images_read_back_exactly(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions"
    for name, (data, _) in CAPTIONS.items():
        (input_folder / name).parent.mkdir(parents=True, exist_ok=True)
        img.write_solid(input_folder / f"{name}.png", (1, 2, 3))
        (input_folder / f"{name}.txt").write_bytes(data)
    prompt = {
        "1": loader_node(str(input_folder), include_subfolders=True),
        "5": companion_node("", "{name}.*"),  # the image's own folder: the image itself does not count
        "7": {"class_type": "BatchTextSaver",
              "inputs": {"text": ["5", 2], "output_directory": str(out), "filename": ["1", 2],
                         "relative_path": ["1", 4], "extension": "caption"}},
        # TEXT is a list (one text per image): a core node that takes one string gets the image's text
        "8": {"class_type": "StringConcatenate", "inputs": {"string_a": ["5", 2], "string_b": "!", "delimiter": ""}},
        "9": {"class_type": "BatchTextSaver",
              "inputs": {"text": ["8", 0], "output_directory": str(out), "filename": ["1", 2],
                         "relative_path": ["1", 4], "extension": ".tags"}},
    }
    client.queue_prompt(prompt)
    client.wait_idle()
    for name, (_, text) in CAPTIONS.items():
        assert (out / f"{name}.caption").read_bytes() == text.encode(), name
        assert (out / f"{name}.tags").read_bytes() == (text + "!").encode(), name
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.caption")) == [
        "bom_crlf.caption", "plain.caption", "sub/深い.caption"]


def caption_prompt(folder: Path, mode: str) -> dict:
    """loader -> caption "caption of <BASE_NAME>" -> Batch Text Saver into the image folder itself."""
    return {
        "1": loader_node(str(folder), iteration_mode="Reset", include_subfolders=True),
        "6": {"class_type": "StringConcatenate",
              "inputs": {"string_a": "caption of ", "string_b": ["1", 3], "delimiter": ""}},
        "7": {"class_type": "BatchTextSaver",
              "inputs": {"text": ["6", 0], "output_directory": str(folder), "filename": ["1", 2],
                         "relative_path": ["1", 4], "overwrite_mode": mode}},
    }


def test_text_results_under_the_inputs_names_with_every_overwrite_mode(
    client: ComfyClient, input_folder: Path
) -> None:
    (input_folder / "sub").mkdir()
    img.write_solid(input_folder / "p.png", (1, 1, 1))
    img.write_solid(input_folder / "sub" / "q.jpg", (2, 2, 2))
    (input_folder / "p.txt").write_bytes(b"hand-written")

    def text(name: str) -> str:
        return (input_folder / name).read_text(encoding="utf-8")

    client.queue_prompt(caption_prompt(input_folder, "Skip existing"))
    client.wait_idle()
    assert text("p.txt") == "hand-written" and text("sub/q.txt") == "caption of q"
    client.queue_prompt(caption_prompt(input_folder, "Append"))
    client.wait_idle()
    assert text("p.txt") == "hand-written\ncaption of p" and text("sub/q.txt") == "caption of q\ncaption of q"
    client.queue_prompt(caption_prompt(input_folder, "Overwrite"))
    client.wait_idle()
    assert text("p.txt") == "caption of p" and text("sub/q.txt") == "caption of q"
    client.queue_prompt(caption_prompt(input_folder, "Add number"))
    client.wait_idle()
    assert text("p_1.txt") == "caption of p" and text("sub/q_1.txt") == "caption of q"
    files = sorted(str(p.relative_to(input_folder)) for p in input_folder.rglob("*") if p.is_file())
    assert files == ["p.png", "p.txt", "p_1.txt", "sub/q.jpg", "sub/q.txt", "sub/q_1.txt"]


def test_a_caption_beside_the_saved_image_follows_its_name(client: ComfyClient, input_folder: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "saved"
    (input_folder / "sub").mkdir()
    img.write_solid(input_folder / "sub" / "r.png", (5, 5, 5))
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "r.png").write_bytes(b"an earlier result")  # the image saver takes r_1.png
    prompt = caption_prompt(input_folder, "Add number")
    prompt["3"] = saver_node(["1", 0], str(out))
    prompt["7"]["inputs"] = {"text": ["6", 0], "output_directory": "", "filename": "", "image_path": ["3", 1]}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert (out / "sub" / "r_1.txt").read_text(encoding="utf-8") == "caption of r"
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["r.png", "r_1.png", "r_1.txt"]


def post(client: ComfyClient, prompt: dict) -> tuple[int, dict]:
    return client.request("POST", "/prompt", {"prompt": prompt, "client_id": client.client_id})


def test_bad_settings_are_refused_when_queue_is_pressed(client: ComfyClient, input_folder: Path,
                                                        tmp_path: Path) -> None:
    img.write_solid(input_folder / "x.png", (1, 1, 1))
    (input_folder / "masks").mkdir()
    for folder, pattern, words in [
        (str(input_folder / "masks"), "mask.png", "pattern 'mask.png' has no {name}"),
        (str(input_folder / "nowhere"), "{name}.png", f"folder '{input_folder / 'nowhere'}' does not exist"),
    ]:
        prompt = masks_workflow(input_folder, Path(folder), tmp_path / "o", "Stop on error", "Empty")
        prompt["5"]["inputs"]["pattern"] = pattern
        status, answer = post(client, prompt)
        assert status == 400, answer
        assert words in str(answer["node_errors"]["5"]), answer
    prompt = caption_prompt(input_folder, "Add number")
    prompt["7"]["inputs"]["extension"] = "t/x"
    status, answer = post(client, prompt)
    assert status == 400 and "extension 't/x' is not a file extension" in str(answer["node_errors"]["7"]), answer


def test_two_matches_for_one_name_stop_and_list_both(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    images, masks = input_folder / "images", input_folder / "masks"
    images.mkdir()
    masks.mkdir()
    img.write_solid(images / "m.png", (1, 1, 1))
    img.write_solid(masks / "m.png", (2, 2, 2))
    (masks / "m.webp").write_bytes(b"")
    prompt = masks_workflow(images, masks, tmp_path / "o", "Skip on error", "Empty")
    prompt["5"]["inputs"]["pattern"] = "{name}.*"
    client.queue_prompt(prompt)
    client.wait_idle()
    [run] = batch_runs(client, str(images))
    error = next(m[1] for m in run.messages if m[0] == "execution_error")
    assert "2 files in" in error["exception_message"] and "'m.png', 'm.webp'" in error["exception_message"]
    assert not (tmp_path / "o").exists()


def test_images_per_run_4_companions_come_as_one_batch_in_the_runs_order(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    images, masks, out = input_folder / "images", input_folder / "masks", tmp_path / "out"
    names = ["p0", "p1", "p2", "sub/p3", "sub/p4", "sub/p5"]  # runs: p0 p1 p2 sub/p3 | sub/p4 sub/p5
    for n, name in enumerate(names):
        for folder in (images, masks):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
        img.write_solid(images / f"{name}.png", (90, 90, 90))
        Image.new("L", (8, 8), 30 * n + 10).save(masks / f"{name}_mask.png")
        (images / f"{name}.txt").write_text(f"caption {n}\nline 2", encoding="utf-8")
    prompt = masks_workflow(images, masks, out, "Stop on error", "Follow error_handling")
    prompt["1"]["inputs"]["images_per_run"] = 4
    prompt["8"] = companion_node("", "{name}.txt")  # each image's caption, beside it
    prompt["9"] = {"class_type": "BatchTextSaver",  # k texts -> k files under the inputs' names
                   "inputs": {"text": ["8", 2], "output_directory": str(out), "filename": ["1", 2],
                              "relative_path": ["1", 4], "extension": "caption"}}
    prompt["10"] = {"class_type": "BatchTextSaver",  # and beside each saved image (SAVED_PATH has k lines)
                    "inputs": {"text": ["8", 2], "output_directory": "", "filename": "", "image_path": ["3", 1]}}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert [r.status for r in batch_runs(client, str(images))] == ["success", "success"]
    assert saved_values(out) == {name: (30 * n + 10, (8, 8)) for n, name in enumerate(names)}
    for n, name in enumerate(names):
        assert (out / f"{name}.caption").read_text(encoding="utf-8") == f"caption {n}\nline 2"
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == f"caption {n}\nline 2"

    # A mask of another size in a run: a clear error naming the files and their sizes.
    Image.new("L", (5, 5), 0).save(masks / "p2_mask.png")
    prompt["1"]["inputs"]["iteration_mode"] = "Reset"
    client.queue_prompt(prompt)
    client.wait_idle()
    error = next(m[1] for m in batch_runs(client, str(images))[-1].messages if m[0] == "execution_error")
    assert "differ in size" in error["exception_message"], error
    assert f"'{masks / 'p2_mask.png'}' 5x5" in error["exception_message"]

    # A missing companion under Skip on error skips its whole run and lists it.
    (masks / "p2_mask.png").unlink()
    prompt["1"]["inputs"]["error_handling"] = "Skip on error"
    client.queue_prompt(prompt)
    client.wait_idle()
    log = comfy_server.log_text()
    assert "2 processed, 4 skipped" in log
    assert f"  p0.png: no companion for 'p2.png': looked for '{masks / 'p2_mask.png'}'" in log


@pytest.mark.parametrize("k", [1, 2])
def test_two_loaders_of_the_same_file_names_each_get_their_own_companions(
    client: ComfyClient, input_folder: Path, tmp_path: Path, k: int
) -> None:
    """Images and their captions in a/ and b/ under the same names: the companion loader and the text
    saver linked to loader B read and write B's, found by the link (loader A runs first in the prompt)."""
    for folder in ("a", "b"):
        (input_folder / folder).mkdir()
        for i in range(2):
            img.write_solid(input_folder / folder / f"x{i}.png", (i, 2, 3), (8, 8))
            (input_folder / folder / f"x{i}.txt").write_text(f"{folder.upper()} caption {i}", encoding="utf-8")
    out = tmp_path / "out"
    prompt = {
        "1": loader_node(str(input_folder / "a"), images_per_run=k),
        "5": loader_node(str(input_folder / "b"), images_per_run=k, start_index=["1", 6]),  # after loader A
        "6": {"class_type": "BatchCompanionLoader",
              "inputs": {"relative_path": ["5", 4], "base_name": ["5", 3], "folder": "", "pattern": "{name}.txt",
                         "if_missing": "Follow error_handling"}},
        "7": {"class_type": "BatchTextSaver",
              "inputs": {"text": ["6", 2], "output_directory": str(out), "filename": ["5", 2],
                         "relative_path": ["5", 4]}},
    }
    client.queue_prompt(prompt)
    client.wait_idle()
    assert {p.name: p.read_text(encoding="utf-8") for p in sorted(out.glob("*.txt"))} == {
        "x0.txt": "B caption 0", "x1.txt": "B caption 1"}
