"""images_per_run in a real ComfyUI: runs of one size as one IMAGE batch, each input saved under its
own name, exactly once per run (kill -9, Skip on error, Cancel), shared by three servers."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from harness import ComfyClient, ComfyServer, shared_servers
from helpers import batch_runs, batch_status
from PIL import Image
from workflows import loader_node, saver_node, slow_or_failing


def run_workflow(directory: Path, out: Path, k: int, sleep: float = 0.0, fail_on: str = "",
                 file_format: str = "png", **loader: object) -> dict:
    """loader (images_per_run k) -> (sleep) -> (fail when FILENAME contains fail_on) -> ImageInvert -> saver."""
    prompt: dict = {"1": loader_node(str(directory), images_per_run=k, **loader)}
    prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": slow_or_failing(prompt, sleep, fail_on)}}
    prompt["3"] = saver_node(["2", 0], str(out), file_format=file_format)
    return prompt


def results(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))


def assert_inverted(result: Path, source: np.ndarray) -> None:
    got = np.asarray(Image.open(result).convert("RGB")).astype(int)
    assert got.shape == source.shape, f"{result.name}: {got.shape} is not its input's {source.shape}"
    assert np.array_equal(got, 255 - source.astype(int)), f"{result.name} does not hold its own input's pixels"


def mixed_folder(folder: Path) -> dict[str, np.ndarray]:
    """15 PNGs whose sizes change along the natural order (runs of 5, 1, 4, 1 and 4 with K = 8),
    three of them in a subfolder."""
    sizes = [(16, 12)] * 5 + [(12, 16)] + [(16, 12)] * 4 + [(10, 10)]
    pixels = {f"a{i:02d}.png": img.write_png(folder / f"a{i:02d}.png", w, h, seed=i) for i, (w, h) in enumerate(sizes)}
    (folder / "sub").mkdir()
    for i in range(3):
        pixels[f"sub/s{i}.png"] = img.write_png(folder / "sub" / f"s{i}.png", 16, 12, seed=50 + i)
    pixels["z.png"] = img.write_png(folder / "z.png", 16, 12, seed=99)
    return pixels


def test_mixed_sizes_with_eight_per_run_give_every_input_its_own_result(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    pixels = mixed_folder(input_folder)
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(input_folder, out, 8, include_subfolders=True))
    client.wait_idle()
    assert results(out) == sorted(pixels), "every input exactly one result, under its own name and subfolder"
    for name, source in pixels.items():
        assert_inverted(out / name, source)
    runs = batch_runs(client, str(input_folder))
    assert all(r.status == "success" for r in runs)
    # a00-a04 | a05 (portrait) | a06-a09 | a10 (10 px) | sub/s0-s2, z (natural order puts sub/ before z)
    assert len(runs) == 5, f"{len(runs)} prompts: runs were not filled up to the size changes"
    row = batch_status(client, input_folder)[0]
    assert (row["state"], row["done"], row["position"]) == ("complete", len(pixels), len(pixels))

    one = tmp_path / "one"  # K = 1: one prompt per image, the same results
    client.queue_prompt(run_workflow(input_folder, one, 1, include_subfolders=True, iteration_mode="Reset"))
    client.wait_idle()
    assert results(one) == sorted(pixels)
    assert len(batch_runs(client, str(input_folder))) == 5 + len(pixels)


def test_large_images_written_into_the_run_by_the_decoding_threads_keep_their_own_pixels(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """Images of half a megapixel and more are converted on the pool straight into the run's batch
    (utils/images/run_batch.py), the next run while the current one works: sizes changing inside
    a scheduled run, and every result its own input's pixels."""
    sizes = [(1024, 512)] * 4 + [(512, 1024)] + [(1024, 512)] * 3
    pixels = {f"L{i}.png": img.write_png(input_folder / f"L{i}.png", w, h, seed=i) for i, (w, h) in enumerate(sizes)}
    time.sleep(2.1)  # older than the prefetch's racy window, as files of a real folder are
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(input_folder, out, 3))
    client.wait_idle()
    assert results(out) == sorted(pixels)
    for name, source in pixels.items():
        assert_inverted(out / name, source)
    assert len(batch_runs(client, str(input_folder))) == 4  # L0-L2 | L3 | L4 (portrait) | L5-L7


def test_each_image_of_a_run_keeps_its_own_format_and_exif(client: ComfyClient, input_folder: Path,
                                                          tmp_path: Path) -> None:
    img.write_png(input_folder / "a.png", 6, 4, seed=1)
    exif = Image.Exif()
    exif[0x010F] = "CameraOfB"
    Image.new("RGB", (6, 4), (9, 99, 199)).save(input_folder / "b.jpg", quality=95, exif=exif.tobytes())
    Image.new("RGB", (6, 4), (200, 100, 0)).save(input_folder / "c.webp", lossless=True)
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(input_folder, out, 4, file_format="same as input"))
    client.wait_idle()
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.webp"]
    assert len(batch_runs(client, str(input_folder))) == 1, "the three images did not come as one run"
    with Image.open(out / "b.jpg") as b, Image.open(out / "c.webp") as c, Image.open(out / "a.png") as a:
        assert (b.format, c.format, a.format) == ("JPEG", "WEBP", "PNG")
        assert b.getexif().get(0x010F) == "CameraOfB", "b.jpg's result lost its own EXIF"
        # (WebP carries the workflow in its Make tag, as ComfyUI's own WebP saver does)
        assert "CameraOfB" not in str(a.getexif().get(0x010F)) + str(c.getexif().get(0x010F)), "EXIF of another input"


@pytest.mark.parametrize("value", [0, 100_000])
def test_absurd_images_per_run_is_refused_when_queued(client: ComfyClient, input_folder: Path, value: int) -> None:
    img.write_png(input_folder / "x.png")
    status, body = client.request("POST", "/prompt", {"prompt": run_workflow(input_folder, input_folder, value),
                                                      "client_id": client.client_id})
    assert status == 400
    assert "images_per_run must be a whole number from 1 to 4096" in str(body)


def test_skip_on_error_fills_the_run_and_a_failing_run_is_skipped_whole(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    for i in range(9):
        img.write_png(input_folder / f"img{i}.png", 8, 8, seed=i)
    img.write_text_as_image(input_folder / "img3.png")  # unreadable, inside the first run
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(input_folder, out, 4, fail_on="img5", error_handling="Skip on error"))
    client.wait_idle()
    # Runs: img0-2 + img4 (img3 skipped, the run filled up), img5-8 fails as a whole (FILENAME is img5).
    assert results(out) == ["img0.png", "img1.png", "img2.png", "img4.png"]
    row = batch_status(client, input_folder)[0]
    assert (row["state"], row["done"], row["skipped"], row["position"]) == ("complete", 4, 5, 9)
    assert len(batch_runs(client, str(input_folder))) == 2


def test_stop_on_error_names_every_file_of_the_failed_run(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    for i in range(6):
        img.write_png(input_folder / f"img{i}.png", 8, 8, seed=i)
    client.queue_prompt(run_workflow(input_folder, tmp_path / "out", 3, fail_on="img3"))
    client.wait_idle()
    row = batch_status(client, input_folder)[0]
    assert row["state"] == "stopped" and row["position"] == 3
    assert all(name in row["last_error"] for name in ("img3.png", "img4.png", "img5.png")), row["last_error"]


def test_cancel_during_a_run_keeps_its_images_for_the_next_press(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    for i in range(12):
        img.write_png(input_folder / f"img{i:02d}.png", 8, 8, seed=i)
    out = tmp_path / "out"
    client.queue_prompt(run_workflow(input_folder, out, 4, sleep=1.5))
    client.wait_for(lambda: results(out) == [f"img{i:02d}.png" for i in range(4)], what="the first run saved")
    client.wait_for(lambda: batch_status(client, input_folder)[0]["position"] == 4, what="the first run recorded")
    client.interrupt()  # during the second run's sleep
    client.wait_idle()
    row = batch_status(client, input_folder)[0]
    assert (row["state"], row["position"], row["done"]) == ("stopped", 4, 4), row
    assert len(results(out)) == 4, "a cancelled run saved something"
    client.queue_prompt(run_workflow(input_folder, out, 4))
    client.wait_idle()
    assert results(out) == [f"img{i:02d}.png" for i in range(12)], "each image once, none lost"


def test_kill_mid_run_then_resume_loses_nothing_and_redoes_at_most_one_run(own_server: ComfyServer) -> None:
    folder = own_server.input_dir / "f"
    folder.mkdir()
    names = [f"img{i:02d}" for i in range(20)]
    for i, name in enumerate(names):
        img.write_png(folder / f"{name}.png", 8, 8, seed=i)
    out = own_server.output_dir / "run"
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(run_workflow(folder, out, 4, sleep=0.6))
    client.wait_for(lambda: len(results(out)) >= 6, timeout=60, what="a run and a half saved")
    own_server.stop(kill=True)  # SIGKILL: no chance to save anything
    before = len(results(out))
    assert before < len(names)

    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(run_workflow(folder, out, 4, sleep=0.6))
    client.wait_idle()
    stems = collections.Counter(p.removesuffix(".png").removesuffix("_1") for p in results(out))
    assert sorted(stems) == names, "an image is missing"
    redone = sum(stems.values()) - len(names)
    assert redone <= 4, f"{redone} images were processed twice (more than one run): {results(out)}"


def test_three_servers_share_a_folder_four_images_per_claim(tmp_path_factory: pytest.TempPathFactory) -> None:
    with shared_servers(tmp_path_factory.mktemp("farm4"), 3, 3) as servers:
        folder = servers[0].input_dir / "shared"
        folder.mkdir()
        for i in range(30):
            img.write_png(folder / f"img{i:02d}.png", 8, 8, seed=i)
        out = servers[0].output_dir / "shared_out"
        clients = [ComfyClient(s.url) for s in servers]
        for c in clients:
            c.queue_prompt(run_workflow(folder, out, 4, sleep=0.2, shared_job="four"))
        for c in clients:
            c.wait_idle(timeout=180)
        assert results(out) == [f"img{i:02d}.png" for i in range(30)], "each image exactly once"
        worked = [sum(r.status == "success" for r in batch_runs(c, str(folder))) for c in clients]
        assert sum(worked) < 20, f"prompts per server {worked}: the images did not come in runs"


def break_loading(client: ComfyClient, marker: str) -> None:
    """Images whose names contain marker now fail to load with an unforeseen error ("" mends it)."""
    client.queue_prompt({"b": {"class_type": "BIPTestBreakLoading", "inputs": {"marker": marker}}})
    client.wait_idle()


@pytest.mark.parametrize("k", [1, 3])
def test_an_unforeseen_failure_loading_images_stops_the_batch_with_it_and_the_next_press_resumes(
    client: ComfyClient, input_folder: Path, tmp_path: Path, k: int
) -> None:
    names = ["img0.png", "img1.png", "img2.png", "img3.png", "img4boom.png", "img5.png"]
    for i, name in enumerate(names):
        img.write_png(input_folder / name, 8, 8, seed=i)
    time.sleep(2.1)  # prefetched too, as in a real folder
    out = tmp_path / "out"
    break_loading(client, "boom")
    try:
        client.queue_prompt(run_workflow(input_folder, out, k))
        client.wait_idle()
        row = batch_status(client, input_folder)[0]
        assert row["state"] == "stopped", f"the batch was left {row['state']!r}: every later press is refused"
        assert "injected failure reading img4boom.png" in row["last_error"]
        assert results(out) == names[:3] + (["img3.png"] if k == 1 else [])
    finally:
        break_loading(client, "")
    client.queue_prompt(run_workflow(input_folder, out, k))  # the next press resumes where it stopped
    client.wait_idle()
    assert results(out) == sorted(names)
    assert batch_status(client, input_folder)[0]["state"] == "complete"


def test_a_shared_run_that_fails_unforeseen_gives_its_claims_back_at_once(
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Server A claims the whole folder as one run and fails loading it: server B, pressed after,
    finishes the folder long before A's claims (60 s lease) could expire."""
    with shared_servers(tmp_path_factory.mktemp("giveback"), 2, 60) as servers:
        folder = servers[0].input_dir / "shared"
        folder.mkdir()
        names = [f"img{i}{'boom' if i == 2 else ''}.png" for i in range(6)]
        for i, name in enumerate(names):
            img.write_png(folder / name, 8, 8, seed=i)
        out = servers[0].output_dir / "giveback_out"
        a, b = (ComfyClient(s.url) for s in servers)
        break_loading(a, "boom")
        a.queue_prompt(run_workflow(folder, out, 6, shared_job="giveback"))
        a.wait_idle(timeout=60)
        assert "injected failure" in batch_status(a, folder)[0]["last_error"] and results(out) == []
        started = time.monotonic()
        b.queue_prompt(run_workflow(folder, out, 6, shared_job="giveback"))
        b.wait_idle(timeout=50)
        assert results(out) == sorted(names), "the other server did not finish the run the failing one had claimed"
        assert time.monotonic() - started < 30, "the claims were only taken over when their lease ran out"
