"""images_per_run under attack, in a real ComfyUI: the edges of runs (the last, partial run, K larger
than the folder, every image its own size, unreadable images at a run's ends), workflows that change
the batch's length before Batch Image Saver, odd names, mixed pixel formats, steering at the first
and last run, kill -9 and SIGSTOP at the worst moment.

Each test here found a defect or held; the defects are fixed, so every test passes now."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import iccprofiles
import imagefiles as img
import numpy as np
import pytest
from harness import ComfyClient, ComfyServer, shared_servers
from helpers import EventListener, batch_runs, batch_status
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


def said(server: ComfyServer, since: int, *words: str) -> bool:
    """True when a pack log line written after offset since holds every word (a warning the user sees)."""
    return any(all(w in line for w in words) for line in server.log_text()[since:].splitlines()
               if "[BatchImageProcessing]" in line)


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


def _embeds_workflow(path: Path) -> bool:
    with Image.open(path) as im:
        return "prompt" in im.info


@pytest.mark.parametrize("last_unreadable", [
    False,
    True,
])
def test_batch_complete_is_true_on_the_last_run_only(client: ComfyClient, input_folder: Path, tmp_path: Path,
                                                     last_unreadable: bool) -> None:
    """BATCH_COMPLETE drives the saver's embed_workflow: only the last run's results carry the prompt."""
    pixels = write_folder(input_folder, [(6, 4)] * (6 if last_unreadable else 5))
    if last_unreadable:
        img.write_text_as_image(input_folder / "img05.png")
        del pixels["img05.png"]
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 4, error_handling="Skip on error",
                              saver={"embed_workflow": ["1", 8]}))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    assert {n: _embeds_workflow(out / n) for n in pixels} == {n: n == "img04.png" for n in pixels}


def _events_of_a_run_of_nine(client: ComfyClient, input_folder: Path, tmp_path: Path) -> tuple[list, list]:
    write_folder(input_folder, [(6, 4)] * 9)
    with EventListener(client.base_url, client.client_id) as events:
        client.queue_prompt(chain(input_folder, tmp_path / "out", 4))
        client.wait_idle()
    bars = [(e["value"], e["max"]) for e in events.of_type("progress") if e.get("node") == "1"]
    statuses = [e for e in events.of_type("batch_image_processing.status") if e.get("directory") == str(input_folder)]
    return bars, statuses


def test_progress_and_status_count_images_not_runs(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    bars, statuses = _events_of_a_run_of_nine(client, input_folder, tmp_path)
    assert bars == [(0, 9), (4, 9), (8, 9)], bars
    final = statuses[-1]
    assert final["state"] == "complete" and final["text"].startswith("9 / 9"), final


def test_run_images_is_never_a_run_that_has_ended(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    _, statuses = _events_of_a_run_of_nine(client, input_folder, tmp_path)
    over = [(e["position"], e["run_images"]) for e in statuses if e["position"] + e["run_images"] > e["total"]]
    assert not over, f"(position, run_images) past the total of 9: {over}"


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


def test_a_workflow_that_doubles_the_run_never_misnames_and_says_so(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 3)
    out = tmp_path / "out"
    since = len(comfy_server.log_text())
    repeat = {"class_type": "RepeatImageBatch", "inputs": {"image": None, "amount": 2}}
    client.queue_prompt(chain(input_folder, out, 3, between=[repeat]))
    client.wait_idle()
    problems = _names_are_not_misattributed(out, pixels)
    told = said(comfy_server, since, "6", "3", "input") or \
        any("6" in m and "3" in m for m in error_messages(client, input_folder))
    assert not problems or told, problems


def test_a_workflow_that_keeps_one_image_of_the_run_says_which_inputs_got_no_result(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    """ImageFromBatch keeps image 1 (img01) of a run of three: it must not be saved as img00, and the user
    must learn that inputs got no result."""
    pixels = write_folder(input_folder, [(6, 4)] * 3)
    out = tmp_path / "out"
    since = len(comfy_server.log_text())
    pick = {"class_type": "ImageFromBatch", "inputs": {"image": None, "batch_index": 1, "length": 1}}
    client.queue_prompt(chain(input_folder, out, 3, between=[pick]))
    client.wait_idle()
    assert not _names_are_not_misattributed(out, pixels), files(out)
    assert said(comfy_server, since, "img02.png") or error_messages(client, input_folder), "no word of the lost inputs"


# ----- the saver's links -------------------------------------------------------------------------------
@pytest.mark.parametrize("relative_path", [None, "flat"])
def test_relative_path_not_linked_still_names_each_image_after_its_input(
    client: ComfyClient, input_folder: Path, tmp_path: Path, relative_path: str | None
) -> None:
    where = input_folder / "sub" if relative_path is None else input_folder  # typed: even at the top level
    where.mkdir(exist_ok=True)
    a = img.write_png(where / "a.png", 6, 4, seed=1)
    b = img.write_png(where / "b.png", 6, 4, seed=2)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 2, include_subfolders=True)
    if relative_path is None:
        del prompt["3"]["inputs"]["relative_path"]
    else:
        prompt["3"]["inputs"]["relative_path"] = relative_path
    client.queue_prompt(prompt)
    client.wait_idle()
    flat = out / (relative_path or "")
    assert files(flat) == ["a.png", "b.png"], "K = 1 writes a.png and b.png; K = 2 must too"
    assert np.array_equal(rgb(flat / "b.png"), inverted(b)) and np.array_equal(rgb(flat / "a.png"), inverted(a))


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


def test_two_loaders_with_the_same_file_names_and_other_k_name_their_own_runs(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """Photos and their masks in two folders with the same names (a common layout): loader A with K = 1,
    loader B with K = 2, a saver on each. Each saver must name its images after its own loader's run."""
    a_pixels = write_folder(input_folder / "a", [(6, 4)])
    b_pixels = write_folder(input_folder / "b", [(5, 3)] * 2)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    prompt = chain(input_folder / "a", out_a, 1)
    # B's start_index from A's INDEX (0): loader A runs first (ComfyUI's order is otherwise left to chance)
    prompt["5"] = loader_node(str(input_folder / "b"), images_per_run=2, start_index=["1", 6])
    prompt["6"] = {"class_type": "ImageInvert", "inputs": {"image": ["5", 0]}}
    prompt["7"] = saver_node(["6", 0], str(out_b), filename=["5", 2], relative_path=["5", 4])
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out_b) == sorted(b_pixels), "saver B named its run after loader A's"
    assert files(out_a) == sorted(a_pixels)
    for name, source in b_pixels.items():
        assert np.array_equal(rgb(out_b / name), inverted(source)), name


@pytest.mark.parametrize("k", [1, 2])
def test_two_loaders_with_the_same_file_names_each_saver_keeps_its_own_exif(
    client: ComfyClient, input_folder: Path, tmp_path: Path, k: int
) -> None:
    for folder, camera in (("a", "CameraA"), ("b", "CameraB")):
        (input_folder / folder).mkdir()
        exif = Image.Exif()
        exif[0x010F] = camera
        for i in range(2):
            Image.fromarray(img.rgb_noise(6, 4, i), "RGB").save(input_folder / folder / f"x{i}.jpg",
                                                                exif=exif.tobytes())
    out_b = tmp_path / "b"
    prompt = chain(input_folder / "a", tmp_path / "a", k, saver={"file_format": "same as input"})
    prompt["5"] = loader_node(str(input_folder / "b"), images_per_run=k, start_index=["1", 6])  # A runs first
    prompt["7"] = saver_node(["5", 0], str(out_b), filename=["5", 2], relative_path=["5", 4],
                             file_format="same as input")
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out_b) == ["x0.jpg", "x1.jpg"]
    for name in files(out_b):
        with Image.open(out_b / name) as im:
            assert im.getexif().get(0x010F) == "CameraB", f"{name} carries loader A's EXIF"


# ----- steering at the first and the last run -----------------------------------------------------------
def _press(client: ComfyClient, action: str) -> None:
    if action == "cancel":
        client.interrupt()
    elif action == "clear":
        assert client.request("POST", "/queue", {"clear": True})[0] == 200
    else:
        assert client.request("POST", f"{ROUTE}/{action}", {"node_id": "1"})[0] == 200


@pytest.mark.parametrize(("action", "at", "kept"), [
    ("cancel", "first", 0), ("cancel", "last", 4), ("stop", "first", 4), ("stop", "last", 8),
    ("clear", "first", 4), ("reset", "last", None),
])
def test_steering_at_the_first_and_last_run(client: ComfyClient, input_folder: Path, tmp_path: Path, action: str,
                                            at: str, kept: int | None) -> None:
    """8 images, K = 4: at most the run in progress completes; the next Queue does every image once."""
    pixels = write_folder(input_folder, [(6, 4)] * 8)
    names = sorted(pixels)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 4, sleep=0.7)
    client.queue_prompt(prompt)
    first = "img00.png" if at == "first" else "img04.png"
    client.wait_for(lambda: (last_row(client, input_folder).get("current_file") == first
                             and last_row(client, input_folder).get("state") == "running"),
                    timeout=60, what=f"the {at} run in progress")
    _press(client, action)
    client.wait_idle()
    row = last_row(client, input_folder)
    if action == "reset":  # the run in progress finishes; nothing after it runs; the next Queue starts over
        assert files(out) == names and len(batch_runs(client, str(input_folder))) == 2, files(out)
        client.queue_prompt(prompt)
        client.wait_idle()
        again = last_row(client, input_folder)
        assert (again["state"], again["done"]) == ("complete", 8), again
        return
    assert files(out) == names[:kept], f"{action} at the {at} run kept {files(out)}"
    assert row["position"] == kept and row["done"] == kept, row
    assert row["state"] == ("complete" if kept == 8 else "stopped"), row
    if kept < 8:
        client.queue_prompt(prompt)
        client.wait_idle()
        assert files(out) == names, "an image lost or done twice after the next Queue"
        assert last_row(client, input_folder)["state"] == "complete"


def test_start_index_in_the_middle_of_what_would_be_a_run(client: ComfyClient, input_folder: Path,
                                                         tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 4, start_index=2, iteration_mode="Reset"))
    client.wait_idle()
    assert files(out) == sorted(pixels)[2:]
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [4, 2]
    row = last_row(client, input_folder)
    assert (row["state"], row["position"], row["done"]) == ("complete", 6, 6), row  # position counts from start_index


# ----- what K must not change: odd names, mixed pixel formats --------------------------------------------
def _same_results(client: ComfyClient, folder: Path, tmp_path: Path, k: int, loader: dict | None = None,
                  **saver: object) -> None:
    """The folder with K = 1 and with K = k: the same file names, byte for byte the same files, for the
    IMAGE and for the MASK (through MaskToImage, a second saver on the same run)."""
    outs = {}
    for n in (1, k):
        outs[n] = tmp_path / f"k{n}"
        prompt = chain(folder, outs[n], n, iteration_mode="Reset", include_subfolders=True,
                       saver={"embed_workflow": False, **saver}, **(loader or {}))
        prompt["30"] = {"class_type": "MaskToImage", "inputs": {"mask": ["1", 1]}}
        prompt["31"] = saver_node(["30", 0], str(outs[n] / "mask"), embed_workflow=False, file_format="png")
        client.queue_prompt(prompt)
        client.wait_idle()
    assert files(outs[k]) == files(outs[1]), f"K = {k} named results otherwise than K = 1"
    for name in files(outs[1]):
        assert (outs[k] / name).read_bytes() == (outs[1] / name).read_bytes(), f"{name} differs between K = 1 and {k}"


def test_odd_names_in_one_run_get_the_names_k_1_gives(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    (input_folder / "sub dir").mkdir()
    for n, name in enumerate(["a.png", "A.png", "a.jpg", "x.PNG", "名前 ü.png", " spaced  name .png", "con.png",
                              "sub dir/a.png", "img_0001.png", "img.png"]):
        Image.fromarray(img.rgb_noise(6, 4, seed=n), "RGB").save(input_folder / name,
                                                                 format="JPEG" if name.endswith("jpg") else "PNG")
    _same_results(client, input_folder, tmp_path, 16)
    assert len(files(tmp_path / "k16")) == 20
    assert len(batch_runs(client, str(input_folder))) == 10 + 1


@pytest.mark.parametrize("color_profile", ["Convert to sRGB", "Keep source"])
def test_16_bit_gray_rgba_palette_profiles_and_rotation_in_one_run_save_as_with_k_1(
    client: ComfyClient, input_folder: Path, tmp_path: Path, color_profile: str
) -> None:
    img.write_rgb16_png(input_folder / "a_rgb16.png", 8, 6)
    img.write_rgb16_png(input_folder / "b_rgba16.png", 8, 6, alpha=True)
    img.write_gray16_png(input_folder / "c_gray16.png", 8, 6)
    Image.fromarray(img.rgb_noise(8, 6, 3)[..., 0], "L").save(input_folder / "d_gray8.png")
    img.write_rgba_png(input_folder / "e_rgba.png", 8, 6)
    Image.fromarray(img.rgb_noise(8, 6, 5), "RGB").convert("P").save(input_folder / "f_palette.png")
    Image.fromarray(img.rgb_noise(8, 6, 6), "RGB").save(input_folder / "g_p3.png", icc_profile=iccprofiles.display_p3())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: 6 x 8 on disk, 8 x 6 upright
    Image.fromarray(img.rgb_noise(6, 8, 7), "RGB").save(input_folder / "h_rotated.jpg", exif=exif.tobytes(),
                                                        icc_profile=iccprofiles.adobe_rgb())
    _same_results(client, input_folder, tmp_path, 8, loader={"color_profile": color_profile}, bit_depth="16",
                  file_format="same as input")
    assert len(files(tmp_path / "k8")) == 2 * 8
    assert len(batch_runs(client, str(input_folder))) == 8 + 1, "the eight images did not come as one run"


# ----- rerun with Skip existing; Clear history in the middle of a run --------------------------------------
def test_skip_existing_on_a_rerun_writes_only_the_missing_result(client: ComfyClient, input_folder: Path,
                                                                 tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 5)
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 3, saver={"overwrite_mode": "Skip existing"}))
    client.wait_idle()
    stamps = {n: (out / n).stat().st_mtime_ns for n in pixels}
    (out / "img03.png").unlink()
    client.queue_prompt(chain(input_folder, out, 3, iteration_mode="Reset", saver={"overwrite_mode": "Skip existing"}))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items() if n != "img03.png"), "rewrote a result"
    assert np.array_equal(rgb(out / "img03.png"), inverted(pixels["img03.png"]))


def test_clear_history_right_after_a_run_neither_stops_nor_redoes(client: ComfyClient, input_folder: Path,
                                                                  tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 10)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 4)
    for n in (0, 8):  # the first run and the last, partial one
        prompt[f"9{n}"] = {"class_type": "BIPTestClearHistoryAfter",
                           "inputs": {"images": ["2", 0], "name": ["1", 2], "clear_if_contains": f"img{n:02d}"}}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out) == sorted(pixels)
    row = last_row(client, input_folder)
    assert (row["state"], row["done"], row["position"]) == ("complete", 10, 10), row


def test_files_replaced_while_held_or_prefetched_are_read_again(client: ComfyClient, input_folder: Path,
                                                               tmp_path: Path) -> None:
    """A A B B B B B with K = 4: run 1 (A A) ends at img02, decoded and held for run 2, whose other images are
    decoded ahead. While run 1 works, img02 gets new pixels and img04 another size: run 2 must use the files
    as they are now (B B | A | B B), never the stale decodes."""
    a, b = (6, 4), (4, 6)
    pixels = write_folder(input_folder, [a, a, b, b, b, b, b])
    out = tmp_path / "out"
    client.queue_prompt(chain(input_folder, out, 4, sleep=1.0))
    client.wait_for(lambda: last_row(client, input_folder).get("current_file") == "img00.png", timeout=60,
                    what="the first run in progress")
    time.sleep(0.4)  # the pool has decoded run 2 ahead by now
    for name, size, seed in (("img02.png", b, 102), ("img04.png", a, 104)):
        fresh = input_folder / f".{name}"
        pixels[name] = img.write_png(fresh, *size, seed=seed)
        os.replace(fresh, input_folder / name)
    client.wait_idle()
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), inverted(source)), f"{name}: a stale decode was saved"
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [2, 2, 1, 2]


@pytest.mark.parametrize(("k", "at"), [(1, 0), (4, 0), (4, 4)])
def test_cancel_landing_after_the_last_node_of_a_run_redoes_nothing(client: ComfyClient, input_folder: Path,
                                                                    tmp_path: Path, k: int, at: int) -> None:
    """Cancel pressed as the run's saver has written its four results (the last node's check is past):
    the next Queue must not write them again."""
    pixels = write_folder(input_folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, k)
    prompt["40"] = {"class_type": "BIPTestCancelAtEnd",
                    "inputs": {"images": ["3", 0], "name": ["1", 2], "cancel_if_contains": f"img{at:02d}",
                               "via": "http"}}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out) == sorted(pixels)[:at + k], "the batch went on after Cancel"
    assert last_row(client, input_folder)["state"] == ("complete" if at + k == 8 else "stopped")
    if at + k == 8:
        return  # the last run: the batch is complete, a Queue now starts a new pass
    client.queue_prompt(chain(input_folder, out, 4))
    client.wait_idle()
    assert files(out) == sorted(pixels), "the cancelled run's results were written again (img0N_1.png)"


def test_a_save_failing_inside_a_run_then_fixed_does_not_write_the_saved_images_twice(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """The saver writes img00 and img01, then cannot create the subfolder of sub/img02 (a file is in the
    way): the run fails (Stop on error) and the saver removes what it wrote of it. With the file gone, the
    next Queue redoes the run: each image once, no img00_1.png."""
    pixels = write_folder(input_folder, [(6, 4)] * 2)
    (input_folder / "sub").mkdir()
    img.write_png(input_folder / "sub" / "img02.png", 6, 4, seed=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("in the way")
    client.queue_prompt(chain(input_folder, out, 4, include_subfolders=True))
    client.wait_idle()
    row = last_row(client, input_folder)
    assert row["state"] == "stopped" and "is a file, not a folder" in row["last_error"], row
    assert files(out) == ["sub"], "the run is redone whole: what it wrote before the failure is removed"
    (out / "sub").unlink()
    client.queue_prompt(chain(input_folder, out, 4, include_subfolders=True))
    client.wait_idle()
    assert files(out) == [*sorted(pixels), "sub/img02.png"], "results written twice after the fix"


@pytest.mark.parametrize(("value", "error"), [(3, ""), (0, "images_per_run must be a whole number")])
def test_images_per_run_linked_from_another_node(client: ComfyClient, input_folder: Path, tmp_path: Path,
                                                 value: int, error: str) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 5)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 1)
    prompt["50"] = {"class_type": "PrimitiveInt", "inputs": {"value": value}}
    prompt["1"]["inputs"]["images_per_run"] = ["50", 0]
    client.queue_prompt(prompt)
    client.wait_idle()
    if error:
        assert files(out) == [] and any(error in m for m in error_messages(client, input_folder))
        return
    assert files(out) == sorted(pixels)
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [3, 2]


# ----- kill -9 while the last run is in flight ------------------------------------------------------------
def test_kill_during_the_last_run_then_resume_does_each_image_once(own_server: ComfyServer) -> None:
    folder = own_server.input_dir / "f"
    pixels = write_folder(folder, [(6, 4)] * 6)
    out = own_server.output_dir / "out"
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(chain(folder, out, 4, sleep=1.0))
    client.wait_for(lambda: last_row(client, folder).get("current_file") == "img04.png", timeout=60,
                    what="the last run in flight")
    assert last_row(client, folder)["position"] == 4
    own_server.stop(kill=True)
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(chain(folder, out, 4))
    client.wait_idle()
    assert files(out) == sorted(pixels), "an image lost, or a finished run redone"
    row = last_row(client, folder)
    assert (row["state"], row["done"], row["position"]) == ("complete", 6, 6), row


def test_a_failing_last_partial_run_is_skipped_whole_and_listed(client: ComfyClient, comfy_server: ComfyServer,
                                                               input_folder: Path, tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 7)
    out = tmp_path / "out"
    prompt = chain(input_folder, out, 3, error_handling="Skip on error")
    prompt["11"] = {"class_type": "BIPTestFailOn",
                    "inputs": {"images": ["2", 0], "name": ["1", 2], "fail_if_contains": "img06"}}
    prompt["3"]["inputs"]["images"] = ["11", 0]
    client.queue_prompt(prompt)
    client.wait_idle()
    assert files(out) == sorted(pixels)[:6]
    row = last_row(client, input_folder)
    assert (row["state"], row["done"], row["skipped"], row["position"]) == ("complete", 6, 1, 7), row
    assert "skipped files:\n  img06.png: node 11" in comfy_server.log_text().rpartition(str(input_folder))[2]


def test_continue_after_a_finished_batch_runs_a_new_pass_in_runs(client: ComfyClient, input_folder: Path,
                                                                tmp_path: Path) -> None:
    pixels = write_folder(input_folder, [(6, 4)] * 5)
    out = tmp_path / "out"
    for _ in range(2):
        client.queue_prompt(chain(input_folder, out, 4))
        client.wait_idle()
    assert files(out) == sorted([*pixels, *(n.replace(".png", "_1.png") for n in pixels)])
    assert [len(r) for r in saved_per_prompt(client, input_folder)] == [4, 1, 4, 1]
    row = last_row(client, input_folder)
    assert (row["state"], row["done"], row["position"]) == ("complete", 5, 5), row


def test_another_k_on_the_next_press_resumes_where_the_stopped_run_left(client: ComfyClient, input_folder: Path,
                                                                       tmp_path: Path) -> None:
    """Stopped by an error in the second run of four; Queue again with K = 3: images 4-7 in runs of 3 and 1."""
    pixels = write_folder(input_folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    failing = chain(input_folder, out, 4)
    failing["11"] = {"class_type": "BIPTestFailOn",
                     "inputs": {"images": ["2", 0], "name": ["1", 2], "fail_if_contains": "img04"}}
    failing["3"]["inputs"]["images"] = ["11", 0]
    client.queue_prompt(failing)
    client.wait_idle()
    assert last_row(client, input_folder)["position"] == 4 and files(out) == sorted(pixels)[:4]
    client.queue_prompt(chain(input_folder, out, 3))
    client.wait_idle()
    assert files(out) == sorted(pixels)
    assert [len(r) for r in saved_per_prompt(client, input_folder) if r] == [4, 3, 1]
    assert last_row(client, input_folder)["state"] == "complete"


# ----- shared_job, K = 4: a server frozen past its lease in a run --------------------------------------------
LEASE_S = 3.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ComfyServer]]:
    with shared_servers(tmp_path_factory.mktemp("runs-pair"), 2, LEASE_S) as servers:
        yield servers


def shared_clients(pair: list[ComfyServer]) -> list[ComfyClient]:
    """Clients of both servers, starting one a test before killed."""
    for server in pair:
        if server.process is None:
            server.start()
    return [ComfyClient(s.url) for s in pair]


def shared_prompt(folder: Path, out: Path, job: str, seconds: float = 2.0) -> dict:
    """loader (K = 4, shared_job) -> a wait on every run -> Batch Image Saver."""
    return {
        "1": loader_node(str(folder), images_per_run=4, shared_job=job),
        "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": seconds}},
        "3": saver_node(["2", 0], str(out)),
    }


def server_in_a_run(clients: list[ComfyClient], folder: Path) -> int:
    """Index of a server working on a run of four now (servers that press together may interleave their
    claims, so which images a run holds is left to chance)."""
    found: list[int] = []

    def look() -> bool:
        found[:] = [i for i, c in enumerate(clients)
                    if last_row(c, folder).get("state") == "running" and last_row(c, folder).get("run_images") == 4]
        return bool(found)

    clients[0].wait_for(look, timeout=60, what="a server in a run")
    return found[0]


def test_a_server_frozen_past_its_lease_in_a_run_of_four_writes_nothing_twice(
    pair: list[ComfyServer], tmp_path: Path
) -> None:
    folder = pair[0].input_dir / "frozen"
    pixels = write_folder(folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    clients = shared_clients(pair)
    for c in clients:
        c.queue_prompt(shared_prompt(folder, out, "freeze4"))
    frozen = server_in_a_run(clients, folder)
    other, process = clients[1 - frozen], pair[frozen].process
    assert process is not None
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        other.wait_for(lambda: last_row(other, folder).get("state") == "complete", timeout=90,
                       what="the other server taking the frozen run over and finishing")
    finally:
        os.killpg(process.pid, signal.SIGCONT)
    for c in clients:
        c.wait_idle(timeout=60)
    assert files(out) == sorted(pixels), "a result written twice (img0N_1.png) or lost"
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), source.astype(int)), name
    for c in clients:
        shared = last_row(c, folder)
        assert shared["shared"]["done"] == 8 and shared["text"].startswith("8 / 8 shared"), shared


def test_two_servers_with_other_k_on_one_shared_job_do_each_image_once(pair: list[ComfyServer], tmp_path: Path) -> None:
    folder = pair[0].input_dir / "mixed_k"
    pixels = write_folder(folder, [(6, 4)] * 7 + [(4, 6)] * 5)
    out = tmp_path / "out"
    clients = shared_clients(pair)
    for c, k in zip(clients, (4, 1), strict=True):
        c.queue_prompt({
            "1": loader_node(str(folder), images_per_run=k, shared_job="mixed-k"),
            "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": 0.15}},
            "3": saver_node(["2", 0], str(out)),
        })
    for c in clients:
        c.wait_idle(timeout=90)
    assert files(out) == sorted(pixels)
    for name, source in pixels.items():
        assert np.array_equal(rgb(out / name), source.astype(int)), name
    for c in clients:
        assert last_row(c, folder)["shared"]["done"] == 12, last_row(c, folder)


def test_stop_on_error_inside_a_shared_run_stops_both_and_the_fix_finishes_once(pair: list[ComfyServer],
                                                                              tmp_path: Path) -> None:
    folder = pair[0].input_dir / "shared_bad"
    pixels = write_folder(folder, [(6, 4)] * 8)
    img.write_text_as_image(folder / "img05.png")
    out = tmp_path / "out"
    prompt = {
        "1": loader_node(str(folder), images_per_run=4, shared_job="bad4"),
        "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": 0.3}},
        "3": saver_node(["2", 0], str(out)),
    }
    clients = shared_clients(pair)
    for c in clients:
        c.queue_prompt(prompt)
    for c in clients:
        c.wait_idle(timeout=60)
    stopped = [last_row(c, folder) for c in clients]
    assert all(r["state"] == "stopped" for r in stopped), stopped
    assert any("img05.png" in r["last_error"] for r in stopped), stopped
    assert "img05.png" not in files(out) and not any("_1." in n for n in files(out)), files(out)
    pixels["img05.png"] = img.write_png(folder / "img05.png", 6, 4, seed=55)
    for c in clients:
        c.queue_prompt(prompt)
    for c in clients:
        c.wait_idle(timeout=60)
    assert files(out) == sorted(pixels), "an image lost or written twice after the fix"
    assert np.array_equal(rgb(out / "img05.png"), pixels["img05.png"].astype(int))


def test_cancel_in_a_shared_run_gives_its_claims_back_whole(pair: list[ComfyServer], tmp_path: Path) -> None:
    """Cancel on one server during its run of four: the other server does those four; each image once."""
    folder = pair[0].input_dir / "shared_cancel"
    pixels = write_folder(folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    clients = shared_clients(pair)
    for c in clients:
        c.queue_prompt(shared_prompt(folder, out, "cancel4"))
    busy = server_in_a_run(clients, folder)
    clients[busy].interrupt()
    for c in clients:
        c.wait_idle(timeout=60)
    assert last_row(clients[busy], folder)["state"] == "stopped"
    other = clients[1 - busy]
    other.wait_for(lambda: last_row(other, folder).get("state") == "complete", timeout=30,
                   what="the other server doing the given-back run")
    assert files(out) == sorted(pixels)


def test_kill_9_of_a_server_in_a_shared_run_has_the_run_retaken_whole(pair: list[ComfyServer], tmp_path: Path) -> None:
    folder = pair[0].input_dir / "shared_kill"
    pixels = write_folder(folder, [(6, 4)] * 8)
    out = tmp_path / "out"
    clients = shared_clients(pair)
    for c in clients:
        c.queue_prompt(shared_prompt(folder, out, "kill4"))
    victim = server_in_a_run(clients, folder)
    pair[victim].stop(kill=True)  # the next test on pair starts it again (shared_clients)
    survivor = clients[1 - victim]
    survivor.wait_for(lambda: last_row(survivor, folder).get("state") == "complete", timeout=60,
                      what="the survivor retaking the killed server's run")
    survivor.wait_idle(timeout=30)
    assert files(out) == sorted(pixels)
    assert last_row(survivor, folder)["shared"]["done"] == 8
