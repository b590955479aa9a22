"""Issue 11 in a real ComfyUI: every input gets its own intact, readable result, whatever its name,
size or depth; bad input gets a clear error naming the input or file; routes never answer 500."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path

import imagefiles as img
import numpy as np
import pytest
from batch_image_processing.utils.images.decode import decode_image
from harness import ComfyClient, ComfyServer
from helpers import batch_runs, is_processing
from PIL import Image
from workflows import loader_node, saver_node

ROUTE = "/batch_image_processing"
# Ten inputs whose names meet (extension, letter case, cleaning, a ':' that is no drive letter).
COLLIDING = {"photo.jpg": (250, 0, 0), "photo.png": (0, 250, 0), "x.png": (0, 0, 250), "x.PNG": (250, 250, 0),
             "trail .png": (0, 250, 250), "trail.png": (250, 0, 250), "a?b.png": (120, 0, 0),
             "a_b.png": (0, 120, 0), "q:r.png": (0, 0, 120), "r.png": (120, 120, 120)}


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def run_batch(client: ComfyClient, prompt: dict) -> None:
    client.queue_prompt(prompt)
    client.wait_idle()


def last_error(client: ComfyClient, directory: Path) -> str:
    runs = batch_runs(client, str(directory))
    return next(m[1]["exception_message"] for m in runs[-1].messages if m[0] == "execution_error")


def saver_prompt(directory: Path, out: str | list, **saver: object) -> dict:
    return {"1": loader_node(str(directory)), "3": saver_node(["1", 0], out, **saver)}  # type: ignore[arg-type]


def test_inputs_whose_names_meet_get_ten_results_in_every_mode(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """#1: ten inputs gave five results under Skip existing and Overwrite."""
    for name, colour in COLLIDING.items():
        img.write_solid(input_folder / name, colour, format="JPEG" if name.endswith(".jpg") else "PNG", quality=100)
    for mode in ("Skip existing", "Overwrite", "Add number"):
        out = tmp_path / mode.replace(" ", "_")
        run_batch(client, saver_prompt(input_folder, str(out), overwrite_mode=mode))
        names = files(out)
        assert len(names) == 10 and len({n.casefold() for n in names}) == 10, (mode, names)
        assert {"photo_jpg.png", "photo_png.png", "q_r.png", "r.png"} <= set(names)
        colours = sorted(tuple(np.asarray(Image.open(out / n))[0, 0]) for n in names)
        expected = sorted(COLLIDING.values())
        assert np.abs(np.array(colours, int) - np.array(expected, int)).max() <= 3, "each result is its own input"

    # Skip existing resumes: a second pass finds every name taken by the same input and writes nothing.
    out = tmp_path / "Skip_existing"
    before = {n: (out / n).stat().st_mtime_ns for n in files(out)}
    run_batch(client, saver_prompt(input_folder, str(out), overwrite_mode="Skip existing"))
    assert {n: (out / n).stat().st_mtime_ns for n in files(out)} == before


def test_results_get_the_permissions_core_save_image_gives(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, test_name: str
) -> None:
    """#2: results were 0600 whatever the umask."""
    img.write_solid(input_folder / "p.png", (1, 2, 3))
    prompt = saver_prompt(input_folder, test_name)
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"{test_name}/core"}}
    run_batch(client, prompt)
    out = comfy_server.output_dir / test_name
    ours, core = out / "p.png", next(out.glob("core_*.png"))
    umask = os.umask(0)
    os.umask(umask)  # the server inherited this process's umask
    assert stat.S_IMODE(ours.stat().st_mode) == stat.S_IMODE(core.stat().st_mode) == 0o666 & ~umask


def test_a_long_name_with_suffix_and_three_images_keeps_three_results(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """#3: a 198-character stem, suffix _x2, an IMAGE of 3: the name was cut after _0001."""
    stem = "s" * 198
    img.write_solid(input_folder / f"{stem}.png", (9, 9, 9))
    out = tmp_path / "long"
    prompt = {"1": loader_node(str(input_folder)),
              "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}},
              "3": saver_node(["2", 0], str(out), filename_suffix="_x2")}
    run_batch(client, prompt)
    names = files(out)
    assert len(names) == 3, names
    for i, name in enumerate(names):
        assert name.endswith(f"_x2_{i + 1:04d}.png") and name.startswith("s" * 100)
        assert len(os.fsencode(name)) <= 255


def test_83_cjk_characters_plus_a_suffix_are_saved(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    """#4: 249 bytes of CJK plus _upscaled stopped the batch with 'File name too long'."""
    stem = "字" * 83
    img.write_solid(input_folder / f"{stem}.png", (7, 7, 7))
    img.write_solid(input_folder / "short字.png", (8, 8, 8))
    out = tmp_path / "cjk"
    run_batch(client, saver_prompt(input_folder, str(out), filename_suffix="_upscaled"))
    assert all(r.status == "success" for r in batch_runs(client, str(input_folder)))
    names = files(out)
    assert len(names) == 2 and "short字_upscaled.png" in names
    long_name = next(n for n in names if n.startswith("字"))
    assert long_name.endswith("_upscaled.png") and len(long_name.encode()) <= 255


@pytest.mark.parametrize("alpha", [False, True], ids=["RGB", "RGBA"])
def test_16bit_tiff_keeps_16_bits_and_round_trips(
    client: ComfyClient, input_folder: Path, tmp_path: Path, alpha: bool
) -> None:
    """#5: 16-bit RGB TIFF loaded as 8 bits."""
    source = img.rgb16_ramp(40, 12, alpha)
    (input_folder / "deep.tif").write_bytes(img.tiff16_bytes(source, compression="lzw", predictor=2))
    first = tmp_path / "first"
    run_batch(client, saver_prompt(input_folder, str(first), file_format="tiff", bit_depth="16"))
    assert np.array_equal(decode_image(str(first / "deep.tiff")).color, source[..., :3])
    second = tmp_path / "second"  # the pack's own 16-bit TIFF as the input of another batch
    run_batch(client, saver_prompt(first, str(second), file_format="same as input", bit_depth="16"))
    assert np.array_equal(decode_image(str(second / "deep.tiff")).color, source[..., :3])


def test_relative_output_directory_cannot_leave_the_output_folder(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path
) -> None:
    """#8: '../x' wrote outside ComfyUI's output folder."""
    img.write_solid(input_folder / "e.png", (5, 5, 5))
    escape = comfy_server.base_dir / "escaped"
    status, body = client.request("POST", "/prompt", {"prompt": saver_prompt(input_folder, "../escaped")})
    assert status == 400
    text = json.dumps(body["node_errors"])
    assert "output_directory" in text and "leads out of ComfyUI's output folder" in text
    # Linked from another node, it is only known when the saver runs: refused then, with the same words.
    prompt = saver_prompt(input_folder, ["4", 0])
    prompt["4"] = {"class_type": "StringConcatenate", "inputs": {"string_a": "..", "string_b": "escaped",
                                                                "delimiter": "/"}}
    run_batch(client, prompt)
    assert "leads out of ComfyUI's output folder" in last_error(client, input_folder)
    assert not escape.exists()


def post_raw(server: ComfyServer, path: str, data: bytes) -> tuple[int, str]:
    req = urllib.request.Request(server.url + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bad_bodies_get_400_never_500(comfy_server: ComfyServer) -> None:
    """#9: a deeply nested JSON body on stop/reset answered 500 (RecursionError)."""
    bodies = [b"[" * 100_000 + b"]" * 100_000, b'{"node_id": ' * 50_000, b"\xff\xfe", b"{\"node_id\": 1e999}",
              b"1" * 5000, b'{"node_id": {"a": [1, 2]}}', b"null"]
    for path in (f"{ROUTE}/stop", f"{ROUTE}/reset"):
        for body in bodies:
            status, text = post_raw(comfy_server, path, body)
            assert status == 400, (path, body[:20], status, text[:200])


def test_foreign_state_files_never_break_status_stop_or_reset(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    """#9: a list, a string or "total": "ten" in the state folder made GET status fail for good."""
    folder = comfy_server.user_dir / "batch_image_processing"
    folder.mkdir(parents=True, exist_ok=True)
    foreign = {"zz_list.json": "[1, 2]", "zz_string.json": '"x"', "zz_ten.json": json.dumps(
        {"key": "zz_ten", "node_id": "1", "directory": "/d", "total": "ten"}), "zz_deep.json": "[" * 100_000}
    for name, text in foreign.items():
        (folder / name).write_text(text)
    try:
        img.write_solid(input_folder / "s.png", (3, 3, 3))
        run_batch(client, saver_prompt(input_folder, str(tmp_path / "o")))
        for _ in range(3):
            body = client.get(f"{ROUTE}/status")
            assert any(b["directory"] == str(input_folder) for b in body["batches"])
        assert client.request("POST", f"{ROUTE}/stop", {"all": True})[0] == 200
        assert client.request("POST", f"{ROUTE}/stop", {"node_id": "1"})[0] == 200
        assert client.request("POST", f"{ROUTE}/reset", {"node_id": "no-such"})[0] == 404
        log = comfy_server.log_text()
        for name, text in foreign.items():
            assert log.count(f"ignoring '{folder / name}'") == 1, name
            assert (folder / name).read_text() == text, "a foreign file is left as it is"
    finally:
        for name in foreign:
            (folder / name).unlink()


def test_unusable_output_directory_is_refused_naming_the_input(
    client: ComfyClient, input_folder: Path, tmp_path: Path
) -> None:
    """#10: 'embedded null byte' and 'File exists' named no input and said nothing to do."""
    img.write_solid(input_folder / "n.png", (4, 4, 4))
    (tmp_path / "a_file").write_text("not a folder")
    for out, expected in ((str(tmp_path / "nul\x00here"), "contains a NUL character"),
                          (str(tmp_path / "a_file"), "is a file, not a folder")):
        status, body = client.request("POST", "/prompt", {"prompt": saver_prompt(input_folder, out)})
        assert status == 400, out
        text = json.dumps(body["node_errors"])
        assert "output_directory" in text and expected in text, text
    # A file where relative_path needs a folder: known only when the saver runs.
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "sub").write_text("in the way")
    run_batch(client, saver_prompt(input_folder, str(tmp_path / "o"), relative_path="sub/deeper"))
    message = last_error(client, input_folder)
    assert f"'{tmp_path / 'o' / 'sub'}' is a file, not a folder. Move that file away" in message
    assert (tmp_path / "o" / "sub").read_text() == "in the way"
    # A folder where the result goes: never "kept" as if it were the result (Skip existing).
    (tmp_path / "o" / "n.png").mkdir()
    run_batch(client, saver_prompt(input_folder, str(tmp_path / "o"), overwrite_mode="Skip existing"))
    assert f"cannot write '{tmp_path / 'o' / 'n.png'}': a folder has that name" in last_error(client, input_folder)


def test_an_image_replaced_by_a_folder_or_a_fifo_mid_batch_says_so(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    """#10: these read as 'corrupt or truncated' and 'the file is empty'."""
    for name in ("a.png", "b.png", "c.png", "d.png"):
        img.write_solid(input_folder / name, (1, 1, 1))
    prompt = {"1": loader_node(str(input_folder), error_handling="Skip on error"),
              "2": {"class_type": "BIPTestSleep", "inputs": {"images": ["1", 0], "seconds": 1.5}},
              "3": saver_node(["2", 0], str(tmp_path / "o"))}
    client.queue_prompt(prompt)
    client.wait_for(lambda: is_processing(client, input_folder, "a.png"), timeout=60, what="the first image")
    (input_folder / "b.png").unlink()
    (input_folder / "b.png").mkdir()
    (input_folder / "c.png").unlink()
    os.mkfifo(input_folder / "c.png")
    client.wait_idle()
    assert files(tmp_path / "o") == ["a.png", "d.png"]
    log = comfy_server.log_text()
    assert "  b.png: it is a folder now, not an image file" in log
    assert "  c.png: it is not a regular file (a FIFO" in log


def test_non_utf8_file_names_are_processed_and_logged_cleanly(
    client: ComfyClient, comfy_server: ComfyServer, input_folder: Path, tmp_path: Path
) -> None:
    """#10: every log line about such a name printed a '--- Logging error ---' traceback."""
    name = os.fsdecode(b"caf\xe9 \xff.png")
    img.write_solid(input_folder / name, (2, 2, 2))
    img.write_zero_byte(input_folder / os.fsdecode(b"empty\xe9.png"))
    start = len(comfy_server.log_text())
    prompt = {"1": loader_node(str(input_folder), error_handling="Skip on error"),
              "3": saver_node(["1", 0], str(tmp_path / "o"))}
    run_batch(client, prompt)
    assert os.listdir(os.fsencode(tmp_path / "o")) == [b"caf\xe9 \xff.png"], "the result keeps the input's bytes"
    log = comfy_server.log_text()[start:]
    assert "Logging error" not in log and "UnicodeEncodeError" not in log, log[-3000:]
    assert "caf\\xe9 \\xff.png" in log and "empty\\xe9.png: the file is empty" in log
