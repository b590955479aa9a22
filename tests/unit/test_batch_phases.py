"""The life of one batch (utils/batch/batch.py), who a Cancel stops, and what makes two presses one batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_image_processing.utils.batch.batch import COMPLETE, IDLE, QUEUED, RUNNING, STOPPED, Batch, BatchError
from batch_image_processing.utils.batch.identity import workflow_identity
from batch_image_processing.utils.batch.queue_requests import batches_to_stop
from batch_image_processing.utils.batch.state import BatchSettings, StateStore


def make_batch(tmp_path: Path, n: int = 3, workflow_id: str = "wf") -> tuple[Batch, StateStore]:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"img{i}.png").write_bytes(b"x")
    settings = BatchSettings("1", str(folder), "All Images", "", False, "Name (natural)", workflow_id)
    store = StateStore(str(tmp_path / "state"))
    return Batch.new_pass(settings, 0, store), store


def test_a_chain_runs_queues_and_completes(tmp_path: Path) -> None:
    batch, store = make_batch(tmp_path, 2)
    assert batch.phase == IDLE and [e.rel_path for e in batch.entries] == ["img0.png", "img1.png"]
    batch.begin_chain("p1", pressed_at=100.0, client_id="browser")
    assert batch.phase == RUNNING and batch.going
    batch.record_success(0)
    batch.queue_next("p2")
    assert batch.phase == QUEUED and batch.posting
    assert not batch.next_started("other") and batch.next_started("p2") and batch.phase == RUNNING
    batch.record_success(1)
    assert batch.finished_all
    batch.end_chain(COMPLETE)
    assert batch.phase == IDLE and batch.state.status == COMPLETE and batch.state.done == 2
    batch.save(store)
    assert store.load(batch.key).status == COMPLETE  # type: ignore[union-attr]


def test_a_stop_request_keeps_the_queued_image_from_running(tmp_path: Path) -> None:
    batch, _ = make_batch(tmp_path)
    batch.begin_chain("p1", 100.0, None)
    batch.record_success(0)
    batch.queue_next("p2")
    batch.request_stop("cancelled")
    assert not batch.next_started("p2"), "a queued image ran after Cancel"
    batch.end_chain(STOPPED)
    assert batch.state.status == STOPPED and batch.state.stop_reason == "cancelled" and batch.state.last_error == ""
    assert batch.describe()["text"] == "1 / 3 - stopped (cancelled)"


def test_presses_during_the_chain_are_duplicates_and_presses_after_a_stop_are_not(tmp_path: Path) -> None:
    batch, _ = make_batch(tmp_path)
    batch.begin_chain("p1", pressed_at=100.0, client_id="b")
    batch.request_stop("Stop batch was pressed")
    stop_at = batch.stop_requested_at
    assert stop_at is not None
    batch.end_chain(STOPPED)
    assert batch.is_echo_or_duplicate(100.5, "b") == "duplicate"  # queued while it ran, before Stop
    assert batch.is_echo_or_duplicate(stop_at + 0.001, "other") is None  # pressed right after Stop
    assert batch.is_echo_or_duplicate(99.0, "b") is None  # queued before this chain began


def test_the_auto_queue_echo_is_recognised_only_from_the_same_browser(tmp_path: Path) -> None:
    batch, _ = make_batch(tmp_path)
    batch.begin_chain("p1", pressed_at=100.0, client_id="b")
    batch.end_chain(COMPLETE)
    ended = batch.ended_at
    assert ended is not None
    assert batch.is_echo_or_duplicate(ended + 0.1, "b") == "echo"
    assert batch.is_echo_or_duplicate(ended + 0.1, "another browser") is None
    assert batch.is_echo_or_duplicate(ended + 2.0, "b") is None
    assert "auto-queue" in batch.echo_refusal()


def test_a_detached_batch_saves_nothing(tmp_path: Path) -> None:
    batch, store = make_batch(tmp_path)
    batch.detached = True
    batch.save(store)
    assert store.load(batch.key) is None


def test_a_new_pass_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="start_index 5 is past the last image"):
        settings = make_batch(tmp_path, 2)[0].settings
        Batch.new_pass(settings, 5, StateStore(str(tmp_path / "s")))


def test_batches_to_stop_for_each_request(tmp_path: Path) -> None:
    a, _ = make_batch(tmp_path, workflow_id="a")
    b, _ = make_batch(tmp_path, workflow_id="b")
    a.begin_chain("a1", 1.0, None)
    a.record_success(0)
    a.queue_next("a2")
    b.begin_chain("b1", 1.0, None)
    going = [a, b]
    # The frontend's Cancel names the prompt it saw running: a finished one still stops its batch.
    assert batches_to_stop("interrupt", {"prompt_id": "a1"}, going, set()) == [(a, "cancelled")]
    assert batches_to_stop("interrupt", {"prompt_id": "unknown"}, going, set()) == []
    assert batches_to_stop("interrupt", {}, going, {"b1"}) == [(a, "cancelled"), (b, "cancelled")]
    assert batches_to_stop("interrupt", {}, going, {"someone else's prompt"}) == []
    assert batches_to_stop("cancel_jobs", {"job_ids": ["b1", 5]}, going, set()) == [(b, "cancelled")]
    assert [x for x, _ in batches_to_stop("queue", {"clear": True}, going, set())] == [a, b]
    removed = "its next image was removed from the queue"
    assert batches_to_stop("queue", {"delete": ["a2"]}, going, set()) == [(a, removed)]
    assert batches_to_stop("queue", {"delete": "nonsense"}, going, set()) == []


def test_workflow_identity() -> None:
    prompt = {"1": {"class_type": "BatchImageLoader", "inputs": {"directory": "x"}},
              "2": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["1", 0]}}}
    reseeded = {"1": prompt["1"], "2": {"class_type": "KSampler", "inputs": {"seed": 2, "model": ["1", 0]}}}
    rewired = {"1": prompt["1"], "2": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["1", 1]}}}
    assert workflow_identity({"workflow": {"id": "abc"}}, prompt) == "abc"
    own = {"workflow": {"id": "abc", "extra": {"batch_image_processing_id": "tab-2"}}}
    assert workflow_identity(own, prompt) == "tab-2"
    assert workflow_identity(None, prompt) == workflow_identity({"workflow": {}}, reseeded)
    assert workflow_identity(None, prompt) != workflow_identity(None, rewired)
    assert workflow_identity("junk", None).startswith("api-")


@pytest.mark.parametrize("body", [{}, {"prompt_id": "press-2"}])
def test_a_cancel_while_a_second_press_of_the_workflow_runs_stops_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: dict
) -> None:
    """The second press runs other nodes before its loader (so it is not known yet as refused):
    the Cancel the user aims at it is for the batch."""
    from batch_image_processing.utils.batch.controller import BatchController
    from batch_image_processing.utils.comfy import bridge as comfy_bridge

    batch, store = make_batch(tmp_path, workflow_id="wf")
    batch.begin_chain("press-1", 1.0, None)
    controller = BatchController(store_factory=lambda: store)
    controller._registry.put(batch)
    press = {"1": {"class_type": "BatchImageLoader", "inputs": {}}, "9": {"class_type": "KSampler", "inputs": {}}}
    monkeypatch.setattr(comfy_bridge, "queued_prompt_ids", lambda: ({"press-2"}, set()))
    monkeypatch.setattr(comfy_bridge, "running_item",
                        lambda pid: (5, pid, press, {"extra_pnginfo": {"workflow": {"id": "wf"}}}))
    monkeypatch.setattr(comfy_bridge, "send_event", lambda *a: None)
    controller.on_queue_request("interrupt", body)
    assert batch.stop_reason == "cancelled"


def test_a_cancel_for_another_workflow_s_prompt_leaves_the_batch_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_image_processing.utils.batch.controller import BatchController
    from batch_image_processing.utils.comfy import bridge as comfy_bridge

    batch, store = make_batch(tmp_path, workflow_id="wf")
    batch.begin_chain("press-1", 1.0, None)
    controller = BatchController(store_factory=lambda: store)
    controller._registry.put(batch)
    other = {"1": {"class_type": "BatchImageLoader", "inputs": {}}}
    monkeypatch.setattr(comfy_bridge, "queued_prompt_ids", lambda: ({"other"}, set()))
    monkeypatch.setattr(comfy_bridge, "running_item",
                        lambda pid: (5, pid, other, {"extra_pnginfo": {"workflow": {"id": "another"}}}))
    monkeypatch.setattr(comfy_bridge, "send_event", lambda *a: None)
    controller.on_queue_request("interrupt", {})
    assert batch.stop_reason is None


def test_an_image_another_node_asked_to_skip_is_recorded_skipped_with_its_reason(tmp_path: Path) -> None:
    from batch_image_processing.utils.batch.prompt_runs import SKIP_ON_ERROR, LoaderRun, PromptRun

    batch, _ = make_batch(tmp_path)
    batch.begin_chain("p1", 100.0, None)
    skipped = LoaderRun(batch, 0, "img0.png", SKIP_ON_ERROR, skip_reason="no companion for 'img0.png'")
    run = PromptRun("p1", template=object(), loaders=[skipped])  # type: ignore[arg-type]
    assert run.record("success", "") == (True, {})
    assert batch.state.done == 0 and batch.state.next_index == 1
    assert batch.state.skipped == [{"file": "img0.png", "reason": "no companion for 'img0.png'"}]
    run = PromptRun("p2", template=object(), loaders=[LoaderRun(batch, 1, "img1.png", SKIP_ON_ERROR)])  # type: ignore[arg-type]
    assert run.record("success", "") == (True, {})
    assert batch.state.done == 1 and len(batch.state.skipped) == 1
