"""Decode a run's small images in worker processes, out of reach of ComfyUI's interpreter lock.

A 256 px PNG decodes in about half a millisecond, much of it Python (Pillow's chunk reading, the
pack's checks). On threads of ComfyUI's own process that Python waits for the interpreter lock
while ComfyUI's threads hold it (the server checking the next prompt, the history, the pack's
watcher): measured on the project's 2-core machine, runs of 16 such images took 2.5x the
single-thread decode floor per image, and 1.0x when their decoding was made free (bench/README,
"Many images per run"). Worker processes have interpreters of their own.

Used by the prefetch for runs (images_per_run > 1) of images below the size that the decode
threads write straight into the run's batch (run_batch.POOL_WRITE_MIN_PIXELS). A worker is a
plain `python` running utils/images/decode_worker.py (multiprocessing's spawn would re-run
ComfyUI's main.py in it), at low priority; it ends when ComfyUI does (its stdin closes). Whatever
goes wrong with a worker (it cannot start, dies, answers nonsense), the images it held are decoded
on a thread instead, so a result never depends on it.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .. import log
from .decode import DecodedImage, DecodeError
from .decode_worker import READY, read_message, write_message
from .pixel_limit import MAX_PIXELS_ENV, pillow_limit

PACK_ROOT = Path(__file__).resolve().parents[2]
# The workers' package name: the pack's folder imported under a name of its own (see _BOOT).
WORKER_PACKAGE = "batch_image_processing_worker"
_BOOT = (
    "import importlib, sys, types\n"
    "package = types.ModuleType(sys.argv[2]); package.__path__ = [sys.argv[1]]\n"
    "sys.modules[sys.argv[2]] = package\n"
    "importlib.import_module(sys.argv[2] + '.utils.images.decode_worker').serve()\n"
)

# The answers' pipe size asked for on Linux (up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
PIPE_BYTES = 1 << 20
# A worker that holds images and has answered nothing for this long is taken for hung (frozen,
# stopped, stuck on a file system): it is killed and its images are decoded on threads. A small
# image decodes in milliseconds.
HUNG_S = 30.0
# Workers that may end unexpectedly before the pack stops starting new ones.
MAX_DEATHS = 3

Fallback = Callable[[str, str], Any]  # (path, colour profile mode) -> a PreparedImage-like result


class _Worker:
    """One worker process, the requests it holds and the thread that reads its answers."""

    def __init__(self, on_answer: Callable[[_Worker, int, tuple], None], on_gone: Callable[[_Worker], None]) -> None:
        flags = 0
        if os.name == "nt":
            flags = subprocess.CREATE_NO_WINDOW | subprocess.BELOW_NORMAL_PRIORITY_CLASS  # type: ignore[attr-defined]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(PACK_ROOT), WORKER_PACKAGE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, creationflags=flags,
            stderr=subprocess.DEVNULL if sys.stderr is None else None,  # pythonw: no console to write to
        )
        self.ready = self.gone = False
        self.progress = time.monotonic()  # when it last answered, or was given work while idle
        if sys.platform.startswith("linux"):
            _widen(self.process.stdout)
        self.held: dict[int, tuple[str, str, Future]] = {}  # request id -> (path, mode, future)
        self._on_answer, self._on_gone = on_answer, on_gone
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name="batch-decode-worker-reader", daemon=True).start()

    def send(self, message: tuple) -> None:
        """Raises OSError (or ValueError) when the worker has gone."""
        assert self.process.stdin is not None
        with self._send_lock:
            write_message(self.process.stdin, message)

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            if read_message(self.process.stdout) != READY:
                raise ValueError("the worker did not start")
            self.ready = True
            while True:
                request_id, answer = read_message(self.process.stdout)
                self.progress = time.monotonic()
                self._on_answer(self, request_id, answer)
        except Exception as exc:  # EOF, a broken pipe, garbage: the worker is of no more use
            if not isinstance(exc, EOFError):
                log.warning("an image decoding process failed (%s); decoding on threads instead", exc)
        self.stop()
        self.gone = True
        self._on_gone(self)

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()


class DecodeProcesses:
    """count worker processes, started on first use; thread-safe. submit() hands back a Future of
    fallback's kind of result: built from the worker's pixels by make, or fallback's own when the
    worker could not do it."""

    def __init__(self, count: int, make: Callable[[DecodedImage], Any], fallback: Fallback,
                 run_fallback: Callable[[Callable[[], Any]], Future]) -> None:
        self._count = max(1, count)
        self._make, self._fallback, self._run_fallback = make, fallback, run_fallback
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._next_id = 0
        self._broken = False  # workers cannot be started, or keep dying: threads from now on
        self._deaths = 0
        self._closed = False

    def available(self) -> bool:
        """Whether a worker is ready to take images now (starting them on the first call)."""
        with self._lock:
            if self._broken or self._closed:
                return False
            for worker in self._workers:
                if not worker.ready and time.monotonic() - worker.progress > HUNG_S:
                    worker.process.kill()  # never got going (frozen while it started): another takes its place
                    worker.gone = True
            self._workers = [w for w in self._workers if not w.gone]
            while len(self._workers) < self._count:
                try:
                    self._workers.append(_Worker(self._answered, self._gone))
                except OSError as exc:
                    self._broken = True
                    log.warning("cannot start an image decoding process (%s); decoding on threads", exc)
                    return False
            return any(w.ready for w in self._workers)

    def submit(self, path: str, color_profile: str) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()  # runs at once: cancel() can no longer lose its answer
        with self._lock:
            ready = [w for w in self._workers if w.ready]
            worker = min(ready, key=lambda w: len(w.held)) if ready else None
            self._next_id += 1
            request_id = self._next_id
            if worker is not None:
                if not worker.held:
                    worker.progress = time.monotonic()
                worker.held[request_id] = (path, color_profile, future)
        if worker is None:
            return self._decode_here(path, color_profile, future)
        try:
            worker.send((request_id, path, color_profile, pillow_limit(), os.environ.get(MAX_PIXELS_ENV)))
        except (OSError, ValueError):
            with self._lock:
                still_held = worker.held.pop(request_id, None) is not None
            if still_held:  # else the worker's end came first and handed it to a thread already
                self._decode_here(path, color_profile, future)
        return future

    def kill_hung(self) -> None:
        """Kill the workers that hold images and have answered nothing for HUNG_S (their images
        are then decoded on threads)."""
        with self._lock:
            hung = [w for w in self._workers if w.held and time.monotonic() - w.progress > HUNG_S]
        for worker in hung:
            log.warning("an image decoding process has not answered for %.0f s; decoding its images on threads",
                        HUNG_S)
            worker.process.kill()

    def close(self) -> None:
        with self._lock:
            self._closed, workers, self._workers = True, self._workers, []
        for worker in workers:
            worker.stop()

    def _decode_here(self, path: str, color_profile: str, future: Future) -> Future:
        try:
            done = self._run_fallback(lambda: self._fallback(path, color_profile))
        except RuntimeError as exc:  # the threads are gone too: Python is exiting
            future.set_exception(exc)
            return future
        done.add_done_callback(lambda d: _copy(d, future))
        return future

    def _answered(self, worker: _Worker, request_id: int, answer: tuple) -> None:
        with self._lock:
            path, color_profile, future = worker.held.pop(request_id)
        try:
            if answer[0] == "unreadable":
                future.set_exception(DecodeError(path, str(answer[1])))
                return
            result = self._make(DecodedImage(*answer[1:])) if answer[0] == "ok" else None
        except Exception:  # an answer that makes no image: the file is decoded here
            result = None
        if result is None:  # "failed" (the worker met an error of its own) or unusable
            self._decode_here(path, color_profile, future)
        else:
            future.set_result(result)

    def _gone(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            if not self._closed:
                self._deaths += 1
                if self._deaths >= MAX_DEATHS and not self._broken:
                    self._broken = True
                    log.warning("image decoding processes keep failing; decoding on threads from now on")
            held, worker.held = worker.held, {}
        for path, color_profile, future in held.values():
            self._decode_here(path, color_profile, future)


def _widen(pipe: Any) -> None:
    """Let one answer (a 256 px image is 192 KiB) pass the pipe at once instead of in 64 KiB turns."""
    import fcntl

    try:
        fcntl.fcntl(pipe.fileno(), 1031, PIPE_BYTES)  # F_SETPIPE_SZ
    except OSError:
        pass


def _copy(source: Future, target: Future) -> None:
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


_all: list[DecodeProcesses] = []


@atexit.register
def _close_all() -> None:
    for processes in _all:
        processes.close()


def register(processes: DecodeProcesses) -> DecodeProcesses:
    """Have processes' workers stopped when Python exits (they also end on their own then)."""
    _all.append(processes)
    return processes
