from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from batch_image_processing.utils.batch.state import BatchSettings, BatchState, StateStore, atomic_write_text
from batch_image_processing.utils.batch.status import describe
from batch_image_processing.utils.file_listing import ImageEntry


def settings(**changes: object) -> BatchSettings:
    base = dict(node_id="7", directory="/data/photos", filter_preset="All Images", custom_pattern="",
                include_subfolders=False, sort_by="Name (natural)")
    base.update(changes)
    return BatchSettings(**base)  # type: ignore[arg-type]


def test_keys_separate_loaders_and_folders_and_are_file_safe() -> None:
    keys = {settings().key, settings(node_id="8").key, settings(directory="/other").key,
            settings(include_subfolders=True).key, settings(node_id="12:3").key}
    assert len(keys) == 5
    assert settings().key == settings().key
    assert all(os.sep not in k and ":" not in k for k in keys)


def test_state_round_trip_and_listing(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path / "state"))
    assert store.load("nope") is None and store.all_states() == []
    state = BatchState(key="k1", node_id="1", directory="/d", total=10, next_index=4, done=3,
                       skipped=[{"file": "x.png", "reason": "empty"}])
    store.save(state)
    entries = [ImageEntry("a/1.png", 1.5), ImageEntry("b.png", 2.0)]
    store.save_snapshot("k1", entries)
    loaded = store.load("k1")
    assert loaded is not None and loaded.to_dict() == state.to_dict()
    assert store.load_snapshot("k1") == entries
    assert [s.key for s in store.all_states()] == ["k1"]
    assert store.delete("k1") and store.load("k1") is None and store.load_snapshot("k1") is None


def test_corrupt_state_reads_as_missing(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    (tmp_path / "k.json").write_text("{not json")
    assert store.load("k") is None


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        atomic_write_text(str(target), 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "temporary file left behind"
    atomic_write_text(str(target), "new")
    assert target.read_text() == "new"


FOREIGN = {
    "a list": "[1, 2, 3]",
    "a string": '"hello"',
    "total as text": json.dumps({"key": "k", "node_id": "1", "directory": "/d", "total": "ten"}),
    "skipped of strings": json.dumps({"key": "k", "node_id": "1", "directory": "/d", "total": 3, "skipped": ["x"]}),
    "null started_at": json.dumps({"key": "k", "node_id": "1", "directory": "/d", "total": 3, "started_at": None}),
    "no key": json.dumps({"node_id": "1", "directory": "/d", "total": 3}),
    "a key of another file": json.dumps({"key": "../../escape", "node_id": "1", "directory": "/d", "total": 3}),
    "nested too deeply": "[" * 100_000 + "]" * 100_000,
    "not UTF-8": b"\xff\xfe{}".decode("latin-1"),
}


@pytest.mark.parametrize("what", list(FOREIGN))
def test_foreign_or_damaged_state_files_are_skipped_with_one_warning(
    tmp_path: Path, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 #9: such a file made GET status (and stop) fail for good."""
    store = StateStore(str(tmp_path))
    good = BatchState(key="good", node_id="1", directory="/d", total=3)
    store.save(good)
    encoding = "latin-1" if what == "not UTF-8" else "utf-8"
    (tmp_path / "k.json").write_text(FOREIGN[what], encoding=encoding)
    caplog.set_level(logging.WARNING, logger="batch_image_processing")
    for _ in range(3):
        assert [s.key for s in store.all_states()] == ["good"]
        assert store.load("k") is None
    warnings = [r.getMessage() for r in caplog.records if "k.json" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert str(tmp_path / "k.json") in warnings[0] and "not a batch state" in warnings[0]
    assert (tmp_path / "k.json").read_text(encoding=encoding) == FOREIGN[what], "a foreign file is never changed"


def test_a_foreign_snapshot_reads_as_missing(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    for text in ('{"ab": 1}', "[[1, 2]]", "[" * 100_000, '"xy"'):
        (tmp_path / "k.files.json").write_text(text)
        assert store.load_snapshot("k") is None


def test_the_status_of_a_run_names_its_first_file_and_how_many_more() -> None:
    state = BatchState(key="k", node_id="1", directory="/d", total=40, next_index=8, current_file="a/img08.png")
    assert describe(state, True, run_images=8)["text"].startswith("8 / 40 - a/img08.png and 7 more")
    assert "more" not in describe(state, True)["text"]
    assert "more" not in describe(state, False, run_images=8)["text"], "a stopped batch has no run in progress"
