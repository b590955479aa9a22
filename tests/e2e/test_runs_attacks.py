"""images_per_run under attack, in a real ComfyUI: the edges of runs (the last, partial run, K larger
than the folder, every image its own size, unreadable images at a run's ends), workflows that change
the batch's length before Batch Image Saver, odd names, mixed pixel formats, steering at the first
and last run, kill -9 and SIGSTOP at the worst moment.

A defect found here is an xfail(strict=True) test: it fails today and turns the suite red the day
it is fixed, so the mark is removed with the fix."""

from __future__ import annotations

from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from harness import ComfyClient, ComfyServer
from helpers import batch_runs, batch_status
from PIL import Image
from workflows import loader_node, saver_node

ROUTE = "/batch_image_processing"


def chain(directory: Path, out: Path, k: int, between: list[dict] | None = None, sleep: float = 0.0,
          saver: dict | None = None, **loader: object) -> dict:
    """loader (images_per_run k) -> (sleep) -> ImageInvert -> (between: nodes "20", "21", ... each fed by
    the one before as its first input) -> Batch Image Saver (FILENAME and RELATIVE_PATH linked)."""
    prompt: dict = {"1": loader_node(str(directory), images_per_run=k, **loader)}
    source: list = ["1", 0]
    if sleep:
        prompt["10"] = {"class_type": "BIPTestSleep", "inputs": {"images": source, "seconds": sleep}}
        source = ["10", 0]
    prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": source}}
    source = ["2", 0]
    for n, node in enumerate(between or []):
        node_id = str(20 + n)
        first_input = next(iter(node["inputs"]))
        prompt[node_id] = {"class_type": node["class_type"], "inputs": {**node["inputs"], first_input: source}}
        source = [node_id, 0]
    prompt["3"] = saver_node(source, str(out), **(saver or {}))
    return prompt


def files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.is_dir() else []


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def inverted(source: np.ndarray) -> np.ndarray:
    return 255 - source.astype(int)


def write_folder(folder: Path, sizes: list[tuple[int, int]], prefix: str = "img") -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    return {f"{prefix}{i:02d}.png": img.write_png(folder / f"{prefix}{i:02d}.png", w, h, seed=i)
            for i, (w, h) in enumerate(sizes)}


def saved_per_prompt(client: ComfyClient, folder: Path) -> list[list[str]]:
    return [r.saved for r in batch_runs(client, str(folder))]


def last_row(client: ComfyClient, folder: Path) -> dict:
    rows = batch_status(client, folder)
    return rows[0] if rows else {}


def error_messages(client: ComfyClient, folder: Path) -> list[str]:
    return [str(d.get("exception_message", "")) for r in batch_runs(client, str(folder))
            for ev, d in r.messages if ev == "execution_error"]


# ----- the shape of runs: the last run, a folder of a multiple of K, K above the folder, all sizes differ -----
@pytest.mark.parametrize(("count", "k", "expected_runs"), [
    (5, 4, [4, 1]),  # a last, partial run of one image
    (8, 4, [4, 4]),  # a multiple of K: no empty run after the last
    (3, 16, [3]),  # K larger than the folder
])
def test_runs_split_the_folder_exactly(client: ComfyClient, input_folder: Path, tmp_path: Path, count: int, k: int,
                                       expected_runs: list[int]) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * count)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, k))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), inverted(source)), f"{name} holds another input's pixels"
    runs = saved_per_prompt(client, input_folder)
    assert [len(r) for r in runs] == expected_runs, runs
    row = last_row(client, input_folder)
    assert (row["state"], row["done"], row["position"], row["total"]) == ("complete", count, count, count), row


def test_every_image_its_own_size_makes_runs_of_one(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(4 + i, 3 + (i % 2)) for i in range(5)])
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 4))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), inverted(source)), name
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [1] * 5
    assert last_row(client, input_folder)["state"] == "complete"


def test_a_size_change_inside_runs_after_a_partial_run(client: ComfyClient, input_folder: Path,
                                                       tmp_path: Path) -> None:
    """A A B A A A with K = 2: runs AA | B | AA | A; the held image (B, A) is never lost or doubled."""
    sizes = [(6, 4), (6, 4), (4, 6), (6, 4), (6, 4), (6, 4)]
    pixels = write_folder(input_folder, sizes)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 2))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), inverted(source)), name
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [2, 1, 2, 1]


# ----- unreadable images at the edges of runs (Skip on error) ------------------------------------------
@pytest.mark.parametrize("where", ["first", "last", "only"])
def test_unreadable_image_at_the_edge_of_a_run_is_skipped_once(client: ComfyClient, comfy_server: ComfyServer,
                                                                input_folder: Path, tmp_path: Path, where: str) -> None:
    count = 1 if where == "only" else 5
    pixels = write_folder(input_folder, [(6, 4)] * count)
    bad = {"first": "img00.png", "last": f"img{count - 1:02d}.png", "only": "img00.png"}[where]
    img.write_text_as_image(input_folder / bad)
    del pixels[bad]
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 2, error_handling="Skip on error"))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), inverted(source)), name
    row = last_row(client, input_folder)
    assert (row["state"], row["done"], row["skipped"], row["position"]) == ("complete", count - 1, 1, count), row
    listed = comfy_server.log_text().rpartition(f"batch complete on '{input_folder}'")[2]
    assert f"skipped files:\n  {bad}: not an image file" in listed, "the skipped file is not listed at the end"


def test_stop_on_error_at_a_run_s_last_image_then_fixed_resumes_without_loss(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 6)
    img.write_text_as_image(input_folder / "img03.png")  # last image of the second run (K = 2)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 2))
    client.wait_idle()
    row = last_row(client, input_folder)
    assert row["state"] == "stopped" and row["position"] == 2 and "img03.png" in row["last_error"], row
    assert files(out) == ["img00.png", "img01.png"]
    pixels["img03.png"] = img.write_png(input_folder / "img03.png", 6, 4, seed=33)
    client.queue_prompt(chain(input_folder, out, 2))
    client.wait_idle()
    assert files(out) == sorted(pixels), "an image lost or done twice after the fix"
    assert np.array_equal(rgb(out / "img03.png"), inverted(pixels["img03.png"]))


# ----- a workflow that changes the number of images before the saver ------------------------------------
def _names_are_not_misattributed(out: Path, pixels: dict[str, np.ndarray]) -> list[str]:
    """Problems: a file named after input X (its stem) whose pixels are not X's."""
    problems = []
    for name in files(out):
        stem = name.rsplit(".", 1)[0]
        owner = next((n for n in pixels if stem.startswith(n.rsplit(".", 1)[0])), None)
        got = rgb(out / name)
        if owner is not None and not np.array_equal(got, inverted(pixels[owner])):
            problems.append(f"{name} is named after {owner} but does not hold its pixels")
    return problems


@pytest.mark.xfail(strict=True, reason="defect: a run whose image count the workflow changed (k inputs, 2k images) "
                   "is saved with every image named after the run's first input (img00_0001..img00_0006), silently")
def test_a_workflow_that_doubles_the_run_never_misnames_and_says_so(client: ComfyClient, input_folder: Path,
                                                                    tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 3)
    out = tmp_path / "out"
    repeat = {"class_type": "RepeatImageBatch", "inputs": {"image": None, "amount": 2}}
    client.queue_prompt(chain(input_folder, out, 3, between=[repeat]))
    client.wait_idle()
    problems = _names_are_not_misattributed(out, pixels)
    said = [m for m in error_messages(client, input_folder) if "6" in m and "3" in m]
    assert not problems or said, problems


@pytest.mark.xfail(strict=True, reason="defect: ImageFromBatch keeps image 1 (img01) of a run of three: the saver "
                   "writes it as img00.png (the first input's name, its EXIF and profile), silently")
def test_a_workflow_that_keeps_one_image_of_the_run_says_which_inputs_got_no_result(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    """ImageFromBatch keeps image 1 (img01) of a run of three: it must not be saved as img00, and the user
    must learn that two inputs got no result."""
    pixels = write_folder(input_folder, [(6, 4)] * 3)
    out = tmp_path / "out"
    pick = {"class_type": "ImageFromBatch", "inputs": {"image": None, "batch_index": 1, "length": 1}}
    client.queue_prompt(chain(input_folder, out, 3, between=[pick]))
    client.wait_idle()
    problems = _names_are_not_misattributed(out, pixels)
    said = error_messages(client, input_folder)
    assert not problems or said, problems


# ----- the saver's links -------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="defect: RELATIVE_PATH not linked and the run starts in a subfolder: the "
                   "saver finds no run, names every image after the first input (a_0001, a_0002), silently")
def test_relative_path_not_linked_still_names_each_image_after_its_input(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    (input_folder / "sub").mkdir()
    a = img.write_png(input_folder / "sub" / "a.png", 6, 4, seed=1)
    b = img.write_png(input_folder / "sub" / "b.png", 6, 4, seed=2)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 2, include_subfolders=True)
    del prompt["3"]["inputs"]["relative_path"]
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out) == ["a.png", "b.png"], "K = 1 writes a.png and b.png (flattened); K = 2 must too"
    assert np.array_equal(rgb(out / "b.png"), inverted(b)) and np.array_equal(rgb(out / "a.png"), inverted(a))


@pytest.mark.xfail(strict=True, reason="defect: FILENAME from BASE_NAME (no extension) with K > 1: every image of "
                   "the run is saved as img00_0001, img00_0002, ... (K = 1 gives img00.png, img01.png), silently")
def test_base_name_linked_as_filename_names_each_image_after_its_input(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 2)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 2, saver={"filename": ["1", 3]}))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    assert not _names_are_not_misattributed(out, pixels)


def test_two_savers_on_one_run_each_write_every_input(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 3)
    out1, out2 = tmp_path / "one", tmp_path / "two"
    prompt = chain(input_folder, out1, 3)
    prompt["4"] = saver_node(["2", 0], str(out2), filename_prefix="p_", file_format="tiff", bit_depth="16")
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out1) == sorted(pixels)
    assert files(out2) == sorted(f"p_{n[:-4]}.tiff" for n in pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out2 / f"p_{name[:-4]}.tiff"), inverted(source)), name
    assert last_row(client, input_folder)["done"] == 3


@pytest.mark.xfail(strict=True, reason="defect: the saver looks its run up by FILENAME/RELATIVE_PATH among every "
                   "loader of the prompt: loader A (K = 1) has img00.png too, so saver B's run of two is saved as "
                   "img00_0001, img00_0002 (and takes A's EXIF, profile and fence)")
def test_two_loaders_with_the_same_file_names_and_other_k_name_their_own_runs(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """Photos and their masks in two folders with the same names (a common layout): loader A with K = 1,
    loader B with K = 2, a saver on each. Each saver must name its images after its own loader's run."""
    a_pixels = write_folder(input_folder / "a", [(6, 4)])
    b_pixels = write_folder(input_folder / "b", [(5, 3)] * 2)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    prompt = chain(input_folder / "a", out_a, 1)
    prompt["5"] = loader_node(str(input_folder / "b"), images_per_run=2)
    prompt["6"] = {"class_type": "ImageInvert", "inputs": {"image": ["5", 0]}}
    prompt["7"] = saver_node(["6", 0], str(out_b), filename=["5", 2], relative_path=["5", 4])
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out_b) == sorted(b_pixels), "saver B named its run after loader A's"
    assert files(out_a) == sorted(a_pixels)
    for name, source in b_pixels.items():
        assert np.array_equal(rgb(out_b / name), inverted(source)), name
