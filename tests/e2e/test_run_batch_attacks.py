"""Runs of large images written into their batch by the decoding threads (utils/images/run_batch.py),
under attack in a real ComfyUI: sizes that change at every edge of a scheduled run, every pixel kind
(alpha, gray, 16 bit, EXIF rotation, CMYK, colour profiles Convert / Keep source), files replaced,
deleted or truncated while their run is written ahead, Cancel and another K / colour mode on the next
press, a downstream node that holds on to every IMAGE, two servers sharing the folder, and a large K
with one huge image among small ones.

The loader's IMAGE and MASK go to BIPTestDumpRun (tests/e2e/fixture_pack), which saves each row as
.npy under its own input's name: each result is compared, float for float, with the same image
loaded with images_per_run = 1 (or with its file's pixels / 255). Images are 1024 x 512 (or
512 x 1024): the smallest that the pool writes (POOL_WRITE_MIN_PIXELS); inputs are older than the
prefetch's racy window (2 s) before a batch starts, so the pool path is really taken.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import iccprofiles
import imagefiles as img
import numpy as np
import pytest
from harness import ComfyClient, ComfyServer, shared_servers
from helpers import batch_runs, batch_status
from PIL import Image
from workflows import loader_node, saver_node, slow_or_failing

A, B = (1024, 512), (512, 1024)  # (width, height): landscape, portrait; 512K pixels each
DUMP = "5"
RACY_S = 2.1  # files younger than 2 s are not prefetched (utils/images/prefetch.py RACY_WINDOW_NS)


# ----- workflow and reading what came out ----------------------------------------------------------------------
def dump_prompt(directory: Path, dump: Path, k: int, sleep: float = 0.0, fail_on: str = "", keep: bool = False,
                out: Path | None = None, **loader: object) -> dict:
    """loader (images_per_run k) -> (sleep) -> (fail on FILENAME) -> BIPTestDumpRun (IMAGE, the loader's MASK,
    RUN_FILES); out: also ImageInvert -> Batch Image Saver there."""
    prompt: dict = {"1": loader_node(str(directory), images_per_run=k, **loader)}
    source = slow_or_failing(prompt, sleep, fail_on)
    prompt[DUMP] = {"class_type": "BIPTestDumpRun",
                    "inputs": {"images": source, "mask": ["1", 1], "run_files": ["1", 9], "out_dir": str(dump),
                               "keep": keep}}
    if out is not None:
        prompt["2"] = {"class_type": "ImageInvert", "inputs": {"image": source}}
        prompt["3"] = saver_node(["2", 0], str(out))
    return prompt


def dumped(dump: Path) -> dict[str, np.ndarray]:
    """name.image / name.mask (a second result of one input: name.dup1.image ...) -> its float32 pixels."""
    return {p.name.removesuffix(".npy"): np.load(p) for p in sorted(dump.glob("*.npy"))} if dump.is_dir() else {}


def assert_same_floats(got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str = "") -> None:
    assert sorted(got) == sorted(want), f"{what}: results missing or duplicated"
    for name, pixels in want.items():
        other = got[name]
        assert (other.dtype, other.shape) == (pixels.dtype, pixels.shape), f"{what} {name}: {other.shape} {other.dtype}"
        if other.tobytes() != pixels.tobytes():
            diff = np.argwhere(other != pixels)
            raise AssertionError(f"{what} {name}: {len(diff)} values differ from K = 1's, first at {diff[:3].tolist()}")


def load_with_k1(client: ComfyClient, folder: Path, dump: Path, **loader: object) -> dict[str, np.ndarray]:
    """The folder loaded one image per run (a new pass: Reset): the reference for every run."""
    client.queue_prompt(dump_prompt(folder, dump, 1, iteration_mode="Reset", **loader))
    client.wait_idle()
    return dumped(dump)


def dump_outputs(client: ComfyClient, folder: Path, dump: Path) -> list[dict]:
    """The dump node's ui output of each finished prompt of the loader on folder writing to dump, in queue order."""
    found = []
    for entry in client.history().values():
        number, _, prompt = entry["prompt"][:3]
        if prompt.get("1", {}).get("inputs", {}).get("directory") != str(folder):
            continue
        if prompt.get(DUMP, {}).get("inputs", {}).get("out_dir") != str(dump):
            continue
        ui = entry.get("outputs", {}).get(DUMP)
        if ui:
            found.append({"number": number, **ui})
    return [{k: v for k, v in f.items() if k != "number"} for f in sorted(found, key=lambda f: f["number"])]


def run_lengths(client: ComfyClient, folder: Path, dump: Path) -> list[int]:
    return [o["shape"][0][0] for o in dump_outputs(client, folder, dump)]


def assert_pool_wrote(client: ComfyClient, folder: Path, dump: Path) -> None:
    """Slices were written by the decoding pool while the runs of this batch went on (the path under test)."""
    fills = [o["pool_fills"][0] for o in dump_outputs(client, folder, dump)]
    assert len(fills) >= 2 and fills[-1] > fills[0], f"the pool wrote no run ahead ({fills}): the path was not taken"


def row(client: ComfyClient, folder: Path) -> dict:
    rows = batch_status(client, folder)
    return rows[0] if rows else {}


def expected(source: np.ndarray) -> np.ndarray:
    """IMAGE slice of an 8-bit RGB file without profile: its values / 255 in float32."""
    return source.astype(np.float32) / np.float32(255.0)


def noise_folder(folder: Path, sizes: list[tuple[int, int]], prefix: str = "L") -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    return {f"{prefix}{i:02d}.png": img.write_png(folder / f"{prefix}{i:02d}.png", w, h, seed=i)
            for i, (w, h) in enumerate(sizes)}


def rgba_noise(path: Path, size: tuple[int, int], seed: int) -> None:
    w, h = size
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").save(path)


def exif_jpeg(path: Path, stored: tuple[int, int], orientation: int, seed: int, **save: object) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    w, h = stored
    Image.fromarray(img.rgb_noise(w, h, seed), "RGB").save(path, exif=exif.tobytes(), quality=90, **save)


# ----- every pixel kind, sizes changing inside scheduled runs ---------------------------------------------------
def kinds_folder(folder: Path) -> list[str]:
    """Twelve large inputs of every pixel kind; upright sizes A except f (B). With K = 3 the runs are
    a b c | d e (f, portrait, ends the scheduled run at its last place) | f | g h i | j k l; d is stored
    portrait and EXIF-rotated to landscape (a transposed view), f stored landscape rotated to portrait."""
    w, h = A
    rng = np.random.default_rng(7)
    rgba_noise(folder / "a_rgba.png", A, 1)
    Image.fromarray(img.rgb_noise(w, h, 2)[..., 0], "L").save(folder / "b_gray.png")
    (folder / "c_rgb16.png").write_bytes(img.png16_bytes(rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)))
    exif_jpeg(folder / "d_rot6.jpg", B, 6, 4)
    la = np.random.default_rng(5).integers(0, 256, (h, w, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(folder / "e_la.png")
    exif_jpeg(folder / "f_rot8.jpg", A, 8, 6, icc_profile=iccprofiles.adobe_rgb())
    Image.fromarray(img.rgb_noise(w, h, 7), "RGB").save(folder / "g_p3.png", icc_profile=iccprofiles.display_p3())
    Image.fromarray(img.rgb_noise(w, h, 8), "RGB").convert("CMYK").save(folder / "h_cmyk.jpg", quality=90)
    Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).save(folder / "i_gray16.png")
    palette = Image.fromarray(img.rgb_noise(w, h, 9), "RGB").convert("P")
    palette.save(folder / "j_palette_t.png", transparency=3)
    (folder / "k_rgba16.png").write_bytes(img.png16_bytes(rng.integers(0, 65536, (h, w, 4), dtype=np.uint16)))
    Image.fromarray(img.rgb_noise(w, h, 11), "RGB").save(folder / "l_adobe.jpg", quality=90,
                                                         icc_profile=iccprofiles.adobe_rgb())
    return sorted(p.name for p in folder.iterdir())


def test_every_pixel_kind_in_large_runs_gives_the_floats_of_k_1(client: ComfyClient, input_folder: Path,
                                                                tmp_path: Path) -> None:
    """Convert to sRGB (Keep source: the cancel tests below); the slices are written alike in both modes."""
    color_profile = "Convert to sRGB"
    names = kinds_folder(input_folder)
    time.sleep(RACY_S)
    runs = tmp_path / "k3"
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=0.3, color_profile=color_profile))
    client.wait_idle()
    assert run_lengths(client, input_folder, runs) == [3, 2, 1, 3, 3]
    assert_pool_wrote(client, input_folder, runs)
    want = load_with_k1(client, input_folder, tmp_path / "k1", color_profile=color_profile)
    assert len(want) == 2 * len(names)
    assert_same_floats(dumped(runs), want, f"K = 3, {color_profile}")
    masks = {n: want[f"{n}.mask"] for n in names}
    assert masks["a_rgba.png"].any() and masks["e_la.png"].any() and masks["k_rgba16.png"].any()
    assert not masks["b_gray.png"].any() and not masks["d_rot6.jpg"].any()


# ----- sizes changing at each edge of a scheduled run ---------------------------------------------------------
def test_size_changes_at_every_edge_of_a_scheduled_run(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    """K = 4: another size first, then a full run; alternating sizes; the size change at a run's last place."""
    k, sizes, lengths = 4, [B, A, A, A, A, B, A, B, A, A, A, B, B], [1, 4, 1, 1, 1, 3, 2]
    for i, size in enumerate(sizes):  # alpha on every other image: the MASK rows matter too
        if i % 2:
            rgba_noise(input_folder / f"L{i:02d}.png", size, i)
        else:
            img.write_png(input_folder / f"L{i:02d}.png", *size, seed=i)
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    client.queue_prompt(dump_prompt(input_folder, runs, k, sleep=0.25))
    client.wait_idle()
    assert run_lengths(client, input_folder, runs) == lengths
    assert_same_floats(dumped(runs), load_with_k1(client, input_folder, tmp_path / "k1"), f"K = {k}")


# ----- a downstream node that keeps every IMAGE it was given --------------------------------------------------
def test_a_node_holding_every_run_and_a_cropped_view_sees_none_of_them_change(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """BIPTestDumpRun with keep holds the loader's IMAGE and MASK of every run (views of the pool's
    batches) and fails if any changes later or a later run shares its memory; core ImageCrop hands a
    second one a view into the IMAGE. Runs end early at size changes, so several runs come from one
    scheduled batch."""
    pixels = noise_folder(input_folder, [A, A, A, A, B, A, A, A, A, A, B, B, A])
    time.sleep(RACY_S)
    runs, crops = tmp_path / "runs", tmp_path / "crops"
    prompt = dump_prompt(input_folder, runs, 3, sleep=0.2, keep=True)
    prompt["6"] = {"class_type": "ImageCrop",
                   "inputs": {"image": ["1", 0], "width": 300, "height": 200, "x": 7, "y": 5}}
    prompt["7"] = {"class_type": "BIPTestDumpRun", "inputs": {"images": ["6", 0], "mask": ["1", 1],
                                                              "run_files": ["1", 9], "out_dir": str(crops),
                                                              "keep": True}}
    client.queue_prompt(prompt)
    client.wait_idle()
    statuses = [r.status for r in batch_runs(client, str(input_folder))]
    assert statuses and all(s == "success" for s in statuses), statuses
    got, cropped = dumped(runs), dumped(crops)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask"))
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), name
        assert np.array_equal(cropped[f"{name}.image"], expected(source)[5:205, 7:307]), name
    assert_pool_wrote(client, input_folder, runs)


# ----- files replaced, deleted, truncated while their run is written ahead ------------------------------------
def replace_file(path: Path, size: tuple[int, int], seed: int, how: str) -> np.ndarray:
    if how == "os.replace":
        fresh = path.with_name(f".{path.name}")
        pixels = img.write_png(fresh, *size, seed=seed)
        os.replace(fresh, path)
        return pixels
    pixels = img.rgb_noise(*size, seed)  # in place, same length: the inode and (here) the size stay
    scratch = path.with_name(f".{path.name}")
    Image.fromarray(pixels, "RGB").save(scratch)
    data = scratch.read_bytes()
    scratch.unlink()
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate()
    return pixels


def wait_current(client: ComfyClient, folder: Path, name: str) -> None:
    client.wait_for(lambda: row(client, folder).get("current_file") == name, timeout=60, what=f"{name}'s run")


def test_files_replaced_while_their_run_is_written_ahead_come_out_new(client: ComfyClient, input_folder: Path,
                                                                     tmp_path: Path) -> None:
    """A A B B B B with K = 3: run 1 (A A) holds L02 (B) for run 2, whose other images the pool writes
    into run 2's batch while run 1 sleeps. Then L02 (held, rewritten in place: same inode) and L03
    (os.replace) get new pixels, L04 another size: run 2 must be L02 L03 with the new pixels, then L04
    alone, then L05."""
    pixels = noise_folder(input_folder, [A, A, B, B, B, B])
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=1.2))
    wait_current(client, input_folder, "L00.png")
    time.sleep(0.5)  # run 2 decoded and written ahead by now
    pixels["L02.png"] = replace_file(input_folder / "L02.png", B, 102, "in place")
    pixels["L03.png"] = replace_file(input_folder / "L03.png", B, 103, "os.replace")
    pixels["L04.png"] = replace_file(input_folder / "L04.png", A, 104, "os.replace")
    client.wait_idle()
    got = dumped(runs)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask"))
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), f"{name}: stale pixels"
    assert run_lengths(client, input_folder, runs) == [2, 2, 1, 1]


def test_deleted_and_truncated_files_inside_a_written_ahead_run_are_skipped(client: ComfyClient, input_folder: Path,
                                                                            tmp_path: Path) -> None:
    pixels = noise_folder(input_folder, [A] * 9)
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=1.0, error_handling="Skip on error"))
    wait_current(client, input_folder, "L00.png")
    time.sleep(0.5)
    (input_folder / "L03.png").unlink()
    with open(input_folder / "L05.png", "r+b") as fh:
        fh.truncate(os.path.getsize(input_folder / "L05.png") // 2)
    client.wait_idle()
    del pixels["L03.png"], pixels["L05.png"]
    got = dumped(runs)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask"))
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), f"{name}: wrong pixels"
    assert run_lengths(client, input_folder, runs) == [3, 3, 1]  # L04 L06 L07 (L03, L05 skipped) | L08
    last = row(client, input_folder)
    assert (last["state"], last["done"], last["skipped"], last["position"]) == ("complete", 7, 2, 9), last


def test_a_file_truncated_in_a_written_ahead_run_stops_it_and_the_fix_resumes_once(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    pixels = noise_folder(input_folder, [A] * 7)
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=1.0))
    wait_current(client, input_folder, "L00.png")
    time.sleep(0.5)
    data = (input_folder / "L04.png").read_bytes()
    (input_folder / "L04.png").write_bytes(data[: len(data) // 2])
    client.wait_idle()
    stopped = row(client, input_folder)
    assert (stopped["state"], stopped["position"]) == ("stopped", 3), stopped
    assert "L04.png" in stopped["last_error"], stopped["last_error"]
    pixels["L04.png"] = replace_file(input_folder / "L04.png", A, 204, "os.replace")
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=0.3))
    client.wait_idle()
    got = dumped(runs)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask")), "lost or redone"
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), f"{name}: wrong pixels"
    assert row(client, input_folder)["state"] == "complete"


# ----- Cancel while a run is written ahead; the next press with another K and colour mode ---------------------
def p3_folder(folder: Path, sizes: list[tuple[int, int]]) -> list[str]:
    """Display P3 noise: Convert and Keep source give other floats."""
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(img.rgb_noise(w, h, 30 + i), "RGB").save(folder / f"P{i:02d}.png",
                                                                 icc_profile=iccprofiles.display_p3())
    return [f"P{i:02d}" for i in range(len(sizes))]


def references(client: ComfyClient, folder: Path, tmp_path: Path, first_kept: int) -> dict[str, np.ndarray]:
    """K = 1 floats: Convert to sRGB for P00 .. P(first_kept - 1), Keep source for the rest (two batches of the
    same node: a Custom filter for the first, start_index for the others)."""
    pattern = ", ".join(f"P{i:02d}.png" for i in range(first_kept))
    convert = load_with_k1(client, folder, tmp_path / "convert", filter_preset="Custom", custom_pattern=pattern)
    keep = load_with_k1(client, folder, tmp_path / "keep", color_profile="Keep source", start_index=first_kept)
    w, h = keep[f"P{first_kept:02d}.png.image"].shape[1::-1]
    raw = [expected(img.rgb_noise(w, h, 30 + i)) for i in (0, first_kept)]
    assert not np.array_equal(convert["P00.png.image"], raw[0]), "Convert kept the file's values: no test"
    assert np.array_equal(keep[f"P{first_kept:02d}.png.image"], raw[1]), "Keep source changed the file's values"
    return {**convert, **keep}


def test_cancel_while_the_next_run_is_written_ahead_then_another_k_and_colour_mode(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """K = 3, Convert: Cancel in run 2 (P03-P05) while run 3 is written ahead; Continue with K = 2 and Keep
    source: run 1's results are Convert's, every later one Keep source's, none twice, none stale."""
    names = p3_folder(input_folder, [A] * 7)
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    client.queue_prompt(dump_prompt(input_folder, runs, 3, sleep=1.0))
    client.wait_for(lambda: row(client, input_folder).get("position") == 3, timeout=60, what="run 1 recorded")
    time.sleep(0.4)  # run 2 sleeping, run 3 written ahead
    client.interrupt()
    client.wait_idle()
    assert (row(client, input_folder)["state"], row(client, input_folder)["position"]) == ("stopped", 3)
    client.queue_prompt(dump_prompt(input_folder, runs, 2, sleep=0.3, color_profile="Keep source"))
    client.wait_idle()
    assert run_lengths(client, input_folder, runs) == [3, 2, 2]
    want = references(client, input_folder, tmp_path, 3)
    assert_same_floats(dumped(runs), want, "after Cancel, K = 2, Keep source")
    assert len(names) * 2 == len(want)


def test_cancel_landing_after_a_run_that_holds_the_next_image_then_keep_source(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """A A B B B, K = 3, Convert: run 1 (P00 P01) holds P02 decoded (Convert) for run 2; Cancel lands after
    run 1's last node, so the batch stops at P02 with that image held. Continue with Keep source and
    K = 2: P02 must be decoded again (Keep source), not handed over as held."""
    p3_folder(input_folder, [A, A, B, B, B])
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    prompt = dump_prompt(input_folder, runs, 3, sleep=0.3)
    prompt["40"] = {"class_type": "BIPTestCancelAtEnd",
                    "inputs": {"images": [DUMP, 0], "name": ["1", 2], "cancel_if_contains": "P00", "via": "http"}}
    client.queue_prompt(prompt)
    client.wait_idle()
    assert row(client, input_folder)["position"] == 2, row(client, input_folder)
    client.queue_prompt(dump_prompt(input_folder, runs, 2, color_profile="Keep source"))
    client.wait_idle()
    want = references(client, input_folder, tmp_path, 2)
    assert_same_floats(dumped(runs), want, "held image across a press with another colour mode")


# ----- images_per_run changing from run to run inside one chain (linked from another loader) -----------------
def test_images_per_run_changing_every_run_never_mixes_up_what_the_pool_wrote(client: ComfyClient, input_folder: Path,
                                                                             tmp_path: Path) -> None:
    """images_per_run linked to the length of a second loader's BASE_NAME: 3, 1, 2, 3, 1, 2 along the chain,
    so every next run is prefetched for the K of the run before (K = 1 runs take images the run pool
    decoded, K > 1 runs images the single-image prefetch prepared) and a held image meets a K = 1 run."""
    pixels = noise_folder(input_folder, [A, A, A, B, A, A, A, A, B, A])
    counter = input_folder.parent / f"{input_folder.name}_k"
    counter.mkdir()
    for name in ("a_x", "b", "cc", "d_y", "e", "ff"):
        img.write_png(counter / f"{name}.png", 4, 4)
    time.sleep(RACY_S)
    runs = tmp_path / "runs"
    prompt = dump_prompt(input_folder, runs, 1, sleep=0.3)
    prompt["50"] = loader_node(str(counter))
    prompt["51"] = {"class_type": "StringLength", "inputs": {"string": ["50", 3]}}
    prompt["1"]["inputs"]["images_per_run"] = ["51", 0]
    client.queue_prompt(prompt)
    client.wait_idle()
    got = dumped(runs)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask")), "lost or twice"
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), f"{name}: other pixels"
    assert run_lengths(client, input_folder, runs) == [3, 1, 2, 2, 1, 1]
    assert row(client, input_folder)["state"] == "complete"


# ----- the batch the pool allocates is the scheduled run's, not the run's -------------------------------------
def commit_ceiling() -> int | None:
    """Bytes above which one allocation is refused under the kernel's default heuristic overcommit
    (RAM + swap); None where every allocation is granted (overcommit_memory 1) or unknown."""
    try:
        mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    except OSError:
        return None
    if mode == "1":
        return None
    total = sum(int(info[key].split()[0]) * 1024 for key in ("MemTotal", "SwapTotal"))
    if mode == "2":
        return int(info["CommitLimit"].split()[0]) * 1024
    return total


def test_one_large_image_among_small_ones_with_a_large_k_is_loaded_as_a_run_of_one(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """Was a defect: the pool's batch for the scheduled run, sized K x the 8192 px image, raised
    MemoryError out of the loader and left the batch 'running'. Now a batch over 4 GiB is not made."""
    k = huge_among_small(input_folder)  # run 1: k small images; the pool decodes run 2 (the large one first)
    time.sleep(RACY_S)

    def press(images_per_run: int) -> None:
        prompt: dict = {"1": loader_node(str(input_folder), images_per_run=images_per_run)}
        prompt[DUMP] = {"class_type": "BIPTestNullSink", "inputs": {"images": slow_or_failing(prompt, 1.0, ""),
                                                                    "mask": ["1", 1]}}
        client.queue_prompt(prompt)
        client.wait_idle()

    press(k)
    problems = [f"the loader failed: {str(d.get('exception_message', ''))[:120]!r}"
                for r in batch_runs(client, str(input_folder)) for ev, d in r.messages if ev == "execution_error"]
    last = row(client, input_folder)
    if last["state"] == "running":  # the queue is idle: nothing will ever move it
        problems.append(f"the batch is left 'running' at {last['position']} with nothing queued")
        press(1)
        again = row(client, input_folder)
        if (again["state"], again["position"]) == ("running", last["position"]):
            problems.append("and the next Queue press (K = 1) is refused")
            client.request("POST", "/batch_image_processing/stop", {"node_id": "1"})
            press(1)
            if row(client, input_folder)["state"] == "running":
                problems.append(f"and after Stop batch too ({row(client, input_folder)['text']!r})")
    last = row(client, input_folder)
    if (last["state"], last["done"], last["position"]) != ("complete", 2 * k, 2 * k):
        problems.append(f"not complete: {last['state']} {last['done']}/{2 * k}")
    assert not problems, "; ".join(problems)


# ----- two servers share a folder (the last tests: the pair is started once for both) ------------------------------
LEASE_S = 3.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ComfyServer]]:
    """Two servers on one base folder (the last tests of this file: started once for both)."""
    with shared_servers(tmp_path_factory.mktemp("run-batch-pair"), 2, LEASE_S) as servers:
        yield servers


def test_two_servers_sharing_a_folder_of_large_images_do_each_once_with_its_own_pixels(
    pair: list[ComfyServer]
) -> None:
    folder = pair[0].input_dir / "shared"
    pixels = noise_folder(folder, [A, A, A, B, A, A, A, A, B, B, A, A])
    time.sleep(RACY_S)
    dump = pair[0].output_dir / "dump"
    clients = [ComfyClient(s.url) for s in pair]
    for c in clients:
        c.queue_prompt(dump_prompt(folder, dump, 3, sleep=0.3, shared_job="big3"))
    for c in clients:
        c.wait_idle(timeout=120)
    got = dumped(dump)
    assert sorted(got) == sorted(f"{n}.{part}" for n in pixels for part in ("image", "mask")), "twice or lost"
    for name, source in pixels.items():
        assert np.array_equal(got[f"{name}.image"], expected(source)), name
        assert not got[f"{name}.mask"].any()
    assert sum(run_lengths(clients[0], folder, dump) + run_lengths(clients[1], folder, dump)) == len(pixels)


def huge_among_small(folder: Path, lead: bool = False) -> int:
    """k small images, one 8192 x 8192, k - 1 small: k (= images_per_run) slices of the large one are more
    than this machine can allocate at once (see commit_ceiling); skips where no allocation is refused.
    lead: a 700 x 700 image (below the pool's write size, slower to decode than the small ones) takes the
    first of the last k places, so that a run claiming them gives the pool a head start on the large one."""
    ceiling = commit_ceiling()
    if ceiling is None:
        pytest.skip("this kernel grants any allocation (overcommit_memory 1): an oversized batch is never refused")
    k = ceiling // (8192 * 8192 * 3 * 4) + 2
    if k > 4096:
        pytest.skip("more memory than images_per_run can reach")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(k):
        img.write_png(folder / f"a{i:04d}.png", 8, 8, seed=i)
    if lead:
        img.write_png(folder / "b0_lead.png", 700, 700, seed=7)
    Image.new("RGB", (8192, 8192), (10, 200, 30)).save(folder / "b1_large.png")
    for i in range(k - 1 - lead):
        img.write_png(folder / f"c{i:04d}.png", 8, 8, seed=1000 + i)
    return k


def test_a_shared_job_with_one_huge_image_among_small_ones_and_a_large_k_finishes(pair: list[ComfyServer]) -> None:
    """Was a defect: the same MemoryError in a shared job kept the failing server's claims for ever
    and the other server waited for them."""
    folder = pair[0].input_dir / "huge"
    k = huge_among_small(folder, lead=True)
    time.sleep(RACY_S)
    clients = [ComfyClient(s.url) for s in pair]
    for n, c in enumerate(clients):  # the second server presses once the first holds the k small ones
        prompt: dict = {"1": loader_node(str(folder), images_per_run=k, shared_job="huge")}
        prompt[DUMP] = {"class_type": "BIPTestNullSink", "inputs": {"images": slow_or_failing(prompt, 1.0, ""),
                                                                    "mask": ["1", 1]}}
        c.queue_prompt(prompt)
        if n == 0:
            c.wait_for(lambda c=c: row(c, folder).get("run_images") == k, timeout=60, what="the first run claimed")
    deadline, wedged_since = time.monotonic() + 120, None
    while True:
        rows = [row(c, folder) for c in clients]
        if all(r.get("state") == "complete" for r in rows):
            break
        failed = [c for c in clients if any(ev == "execution_error" for r in batch_runs(c, str(folder))
                                            for ev, _ in r.messages)]
        waiting = [r for r in rows if "waiting for" in r.get("text", "")]
        if failed and waiting and not any(c.queue()["queue_running"] for c in failed):
            wedged_since = wedged_since or time.monotonic()
            if time.monotonic() - wedged_since > 2 * LEASE_S:  # an expired claim would have been taken over
                for c in clients:  # let the waiting prompt go before the servers stop
                    c.request("POST", "/batch_image_processing/stop", {"all": True, "all_servers": True})
                    c.interrupt()
                raise AssertionError(f"hung: a server failed its run and holds its claims; the other waits: "
                                     f"{[r.get('text') for r in rows]}")
        assert time.monotonic() < deadline, f"neither complete nor wedged: {[r.get('text') for r in rows]}"
        time.sleep(0.3)
