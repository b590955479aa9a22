"""Behaviour that needs a server of its own: crash and restart, other addresses and ports."""

from __future__ import annotations

from pathlib import Path

import imagefiles as img
from harness import ComfyClient, ComfyServer, free_port
from helpers import saved_names
from workflows import loader_to_saveimage


def test_killed_mid_batch_resumes_after_restart(own_server: ComfyServer) -> None:
    folder = own_server.input_dir / "photos"
    folder.mkdir()
    names = [f"k{i:02d}" for i in range(8)]
    for i, name in enumerate(names):
        img.write_solid(folder / f"{name}.png", (i * 20, 0, 0))
    out = own_server.output_dir / "run"
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(loader_to_saveimage(str(folder), "run", sleep=0.5))
    client.wait_for(lambda: len(list(out.glob("*.png"))) >= 3, timeout=60, what="three images saved")
    own_server.stop(kill=True)  # SIGKILL: no chance to save anything
    before = saved_names(out)
    assert 3 <= len(before) < len(names)

    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(loader_to_saveimage(str(folder), "run", sleep=0.5))
    client.wait_idle()
    after = saved_names(out)
    assert set(after) == set(names), "an image is missing"
    redone = len(after) - len(names)
    assert redone <= 1, f"{redone} images were processed twice: {after}"
    assert after[: len(before)] == before


def test_listen_on_all_interfaces_and_a_non_default_port(own_server: ComfyServer) -> None:
    own_server.listen = ""  # bare --listen: 0.0.0.0 and ::
    own_server.port = free_port()
    folder = own_server.input_dir / "f"
    folder.mkdir()
    for i in range(3):
        img.write_solid(folder / f"l{i}.png", (i, i, i))
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(loader_to_saveimage(str(folder), "out"))
    client.wait_idle()
    assert saved_names(own_server.output_dir / "out") == ["l0", "l1", "l2"]


def test_relative_directory_is_inside_the_input_folder(own_server: ComfyServer) -> None:
    folder = own_server.input_dir / "relative" / "set"
    folder.mkdir(parents=True)
    img.write_solid(folder / "only.png", (5, 5, 5))
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(loader_to_saveimage("relative/set", "rel"))
    client.wait_idle()
    assert saved_names(own_server.output_dir / "rel") == ["only"]


def two_loader_prompt(dir_a: str, dir_b: str, out: str) -> dict:
    from workflows import loader_node

    return {
        "1": loader_node(dir_a),
        "5": loader_node(dir_b),
        "3": {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 3], "string_b": ["5", 3],
                                                             "delimiter": "+"}},
        "6": {"class_type": "StringConcatenate", "inputs": {"string_a": f"{out}/", "string_b": ["3", 0],
                                                             "delimiter": ""}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": ["6", 0]}},
    }


def test_two_loaders_keep_their_own_positions_and_stop_with_the_shorter(own_server: ComfyServer) -> None:
    a, b = own_server.input_dir / "a", own_server.input_dir / "b"
    a.mkdir()
    b.mkdir()
    for i in range(4):
        img.write_solid(a / f"a{i}.png", (i, 0, 0))
    for i in range(2):
        img.write_solid(b / f"b{i}.png", (0, i, 0))
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(two_loader_prompt(str(a), str(b), "zip"))
    client.wait_idle()
    assert saved_names(own_server.output_dir / "zip") == ["a0+b0", "a1+b1"]
    # Queue again: loader A continues where it was, loader B starts a new pass.
    client.queue_prompt(two_loader_prompt(str(a), str(b), "zip"))
    client.wait_idle()
    assert saved_names(own_server.output_dir / "zip") == ["a0+b0", "a1+b1", "a2+b0", "a3+b1"]


def test_state_lives_in_the_user_folder(own_server: ComfyServer, tmp_path: Path) -> None:
    folder = own_server.input_dir / "s"
    folder.mkdir()
    img.write_solid(folder / "s.png", (1, 2, 3))
    own_server.start()
    client = ComfyClient(own_server.url)
    client.queue_prompt(loader_to_saveimage(str(folder), "s"))
    client.wait_idle()
    state_files = list((own_server.user_dir / "batch_image_processing").glob("*.json"))
    assert len(state_files) == 2  # the state and the file-list snapshot
