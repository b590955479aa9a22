"""The saver's side of a shared batch: write a result only while this server still holds the
image's claim, and record the image done the moment its result is written.

Checked right before the result's atomic rename (the encode is done, only the rename is left), so
a server that was frozen, starved of CPU or cut off from the claims folder for a whole lease, and
whose image another server took over meanwhile, writes nothing: its result would be the second.
Recording "done" right after the write, before ComfyUI finishes the prompt, leaves no time in
which a finished image still looks unfinished. Batches of a single server are not fenced.
"""

from __future__ import annotations

import threading
import time

from .. import log
from .batch import Batch
from .prompt_runs import RunInput
from .shared import ClaimsFolderError, JobGoneError, call_shared

_WHY = {"lost": "its claim was taken over by another server after this server's lease ran out",
        "done_elsewhere": "another server finished it after this server's lease ran out",
        "gone": "the shared batch was reset"}


def may_write(batch: Batch | None, source: RunInput, lock: threading.RLock) -> bool:
    """True when the result of source may be written now; False (logged) when its claim is lost."""
    job = batch.shared if batch is not None else None
    if job is None or batch is None:
        return True
    started = time.perf_counter()
    try:
        verdict = job.fence(source.index)
    except ClaimsFolderError as exc:
        job.forget(source.index)  # unprovable now: its lease runs out and the image is redone once
        with lock:
            batch.failure = batch.failure or str(exc)
        log.error("node %s: not saving the result of %s: %s", batch.settings.node_id, source.rel_path, exc)
        return False
    except JobGoneError:
        verdict = "gone"
    if verdict == "ok":
        log.debug("fence of %s passed in %.2f ms", source.rel_path, 1000 * (time.perf_counter() - started))
        return True
    log.warning("node %s: not saving the result of %s: %s", batch.settings.node_id, source.rel_path,
                _WHY.get(verdict, verdict))
    return False


def record_saved(batch: Batch | None, source: RunInput, lock: threading.RLock) -> bool:
    """The result of source is written: record the image done now (True). A claims folder that fails
    keeps the record pending (written at the next chance) and stops the chain after this image.
    False for a batch of one server: its run is recorded whole when the prompt ends."""
    job = batch.shared if batch is not None else None
    if job is None or batch is None:
        return False
    _, failure = call_shared(batch.settings.node_id, job.complete, source.index, "done")
    if failure:
        with lock:
            batch.failure = batch.failure or failure
    return True
