"""The watcher thread, against a stand-in for ComfyUI's queue and history (the real one is
exercised by every end-to-end test)."""

from __future__ import annotations

import threading
import time

import pytest
from batch_image_processing.utils.comfy import bridge as comfy_bridge
from batch_image_processing.utils.comfy import prompt_watcher


class FakeQueue:
    def __init__(self) -> None:
        self.history: dict[str, dict] = {}
        self.running: set[str] = set()

    def finished_status(self, prompt_id: str) -> object:
        return self.history.get(prompt_id, comfy_bridge.NOT_FINISHED)

    def queued_prompt_ids(self) -> tuple[set[str], set[str]]:
        return set(self.running), set()


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(comfy_bridge, "finished_status", fake.finished_status)
    monkeypatch.setattr(comfy_bridge, "queued_prompt_ids", fake.queued_prompt_ids)
    monkeypatch.setattr(prompt_watcher, "LIVENESS_CHECK_S", 0.05)
    return fake


def test_reports_each_prompt_once_within_milliseconds_of_its_end(queue: FakeQueue) -> None:
    seen: list[tuple[str, object, float]] = []
    done = threading.Event()

    def finished(prompt_id: str, status: object) -> None:
        seen.append((prompt_id, status, time.monotonic()))
        if len(seen) == 2:
            done.set()

    watcher = prompt_watcher.PromptWatcher(finished)
    queue.running = {"a", "b"}
    watcher.watch("a")
    watcher.watch("b")
    time.sleep(0.1)
    assert seen == []
    ended = time.monotonic()
    queue.history["a"] = {"status_str": "success"}
    queue.history["b"] = {"status_str": "error"}
    queue.running = set()  # ComfyUI moves a prompt from running to history under one lock
    assert done.wait(2)
    assert sorted((p, s) for p, s, _ in seen) == [("a", {"status_str": "success"}), ("b", {"status_str": "error"})]
    assert max(t for _, _, t in seen) - ended < 0.05
    time.sleep(0.05)
    assert len(seen) == 2


def test_a_prompt_gone_from_queue_and_history_is_reported_as_none(queue: FakeQueue) -> None:
    got: list[object] = []
    done = threading.Event()
    watcher = prompt_watcher.PromptWatcher(lambda pid, status: (got.append((pid, status)), done.set()))
    watcher.watch("vanished")  # neither running, pending nor in history: the queue was cleared
    assert done.wait(2)
    assert got == [("vanished", None)]


def test_a_failing_callback_does_not_kill_the_watcher(queue: FakeQueue) -> None:
    calls: list[str] = []
    done = threading.Event()

    def finished(prompt_id: str, status: object) -> None:
        calls.append(prompt_id)
        if prompt_id == "first":
            raise RuntimeError("boom")
        done.set()

    watcher = prompt_watcher.PromptWatcher(finished)
    queue.history["first"] = queue.history["second"] = {"status_str": "success"}
    watcher.watch("first")
    time.sleep(0.05)
    watcher.watch("second")
    assert done.wait(2)
    assert calls == ["first", "second"]


def test_a_reused_prompt_id_is_not_finished_by_its_old_history_entry(queue: FakeQueue) -> None:
    """A client that re-posts one prompt_id: history still holds the last run while this one runs."""
    got: list[object] = []
    queue.history["same"] = {"status_str": "success", "old": True}
    queue.running = {"same"}
    watcher = prompt_watcher.PromptWatcher(lambda pid, status: got.append(status))
    watcher.watch("same")
    time.sleep(0.2)
    assert got == [], "the old run's history entry ended the running prompt"
    queue.history["same"] = {"status_str": "success"}
    queue.running = set()
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [{"status_str": "success"}]
