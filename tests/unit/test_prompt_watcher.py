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
    monkeypatch.setattr(comfy_bridge, "_task_done_hooked", False)  # polling, unless a test hooks task_done
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


class FakeComfyQueue:
    """The two things of ComfyUI's PromptQueue that the task_done hook touches."""

    def __init__(self, history: dict[str, dict]) -> None:
        self.history = history
        self.currently_running: dict[int, tuple] = {}

    def task_done(self, item_id: int, history_result: object, status: object) -> None:
        prompt_id = self.currently_running.pop(item_id)[1]
        self.history[prompt_id] = status  # as ComfyUI does, under its lock, before it returns


def test_with_the_finish_signal_a_prompt_is_reported_at_once_and_nothing_polls(
        queue: FakeQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    comfy = FakeComfyQueue(queue.history)
    monkeypatch.setattr(comfy_bridge, "_queue", lambda: comfy)
    monkeypatch.setattr(comfy_bridge, "_task_done_hooked", False)
    monkeypatch.setattr(prompt_watcher, "POLL_SIGNALLED_S", 30.0)  # only the signal can report it in time
    monkeypatch.setattr(prompt_watcher, "LIVENESS_CHECK_S", 30.0)
    looks: list[str] = []
    real_status = queue.finished_status
    monkeypatch.setattr(comfy_bridge, "finished_status", lambda pid: (looks.append(pid), real_status(pid))[1])
    assert comfy_bridge.hook_task_done()
    got: list[tuple[str, object]] = []
    done = threading.Event()
    watcher = prompt_watcher.PromptWatcher(lambda pid, status: (got.append((pid, status)), done.set()))
    comfy.currently_running[7] = (0, "p")
    queue.running = {"p"}
    watcher.watch("p")
    time.sleep(0.5)
    assert got == [] and len(looks) <= 2, f"{len(looks)} looks while nothing finished: the watcher polls"
    queue.running = set()
    comfy.task_done(7, None, {"status_str": "success"})
    assert done.wait(5), "the finish signal did not wake the watcher"
    assert got == [("p", {"status_str": "success"})]


def test_task_done_hooked_by_another_copy_of_the_pack_leaves_this_one_polling(
        queue: FakeQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two copies of the pack in one ComfyUI (a renamed folder): the first hook's listeners are
    not this copy's, so this copy must not wait for a signal that never comes."""
    comfy = FakeComfyQueue(queue.history)

    def foreign(item_id: int, history_result: object, status: object) -> None:
        FakeComfyQueue.task_done(comfy, item_id, history_result, status)

    foreign._bip_hooked = True  # type: ignore[attr-defined]
    foreign._bip_listeners = []  # type: ignore[attr-defined]
    comfy.task_done = foreign  # type: ignore[method-assign]
    monkeypatch.setattr(comfy_bridge, "_queue", lambda: comfy)
    monkeypatch.setattr(comfy_bridge, "_task_done_hooked", True)
    monkeypatch.setattr(prompt_watcher, "POLL_SIGNALLED_S", 30.0)  # only polling reports it in time
    assert comfy_bridge.hook_task_done()
    assert not comfy_bridge.finish_signalled()
    got: list[str] = []
    watcher = prompt_watcher.PromptWatcher(lambda pid, status: got.append(pid))
    comfy.currently_running[3] = (0, "q")
    queue.running = {"q"}
    watcher.watch("q")
    time.sleep(0.05)
    queue.running = set()
    comfy.task_done(3, None, {"status_str": "success"})
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    assert got == ["q"]
