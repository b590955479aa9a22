"""A shared batch: several ComfyUI servers work through one folder, each image processed by one.

Servers coordinate only through files in a job folder (by default hidden inside the image
folder, which every server sees, whatever its mount path). Layout:

    <job>/pass-000001.json         the pass: id, start_index and file list; published once, by the
                                   first server, so every server agrees on what the batch holds
    <job>/pass-000001-<nonce>/     its claims (see claim_store); the nonce makes a stale server
                                   fail loudly after a reset instead of writing into a new pass
    <job>/stop.json                "stop all": every server checks it before claiming an image
    <job>/owners/<owner-id>        heartbeat of each server (its mtime: the file server's clock)
    <job>/tmp/                     temporary files of exclusive publishes
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import log
from ..file_listing import ImageEntry
from .claim_store import RENEW_OK, Claim, ClaimStore, JobGoneError
from .files import FsClock, Publisher, new_owner_id, read_record, unique_name
from .job_folder import ClaimsFolderError, JobStoppedError, SharedFolderError, folder_problem, lease_from_env
from .passes import Pass, create_pass, latest_number, made_from, read_pass, refusal

__all__ = ["Claim", "ClaimsFolderError", "JobGoneError", "JobStoppedError", "Pass", "SharedFolderError",
           "SharedJob"]


class SharedJob:
    """This server's view of one shared job; thread-safe. Call close() when done with it."""

    def __init__(self, folder: str, owner_id: str | None = None, lease_s: float | None = None,
                 on_lost: Callable[[int, str], None] | None = None, auto_renew: bool = True,
                 name: str = "") -> None:
        self.folder = folder
        self.name = name or os.path.basename(folder)
        self.owner = owner_id or new_owner_id()
        self.lease_s = lease_s if lease_s and lease_s > 0 else lease_from_env()
        self.on_lost = on_lost
        self.auto_renew = auto_renew  # False: the caller renews (tests simulate a frozen server)
        self._pub = Publisher(os.path.join(folder, "tmp"), self.owner)
        self._clock = FsClock(os.path.join(folder, "owners", self.owner), self.lease_s / 3)
        self._lock = threading.RLock()
        self._pass: Pass | None = None
        self._claims: ClaimStore | None = None
        self._wake = threading.Event()
        self._closed = False
        self._renewer: threading.Thread | None = None
        self.failure: ClaimsFolderError | None = None  # the renewal thread's, until the next press

    # ----- the pass ------------------------------------------------------------------------
    def open_pass(self, make_entries: Callable[[], list[ImageEntry]], start_index: int = 0,
                  new_pass_if_complete: bool = False, directory: str = "",
                  settings: dict[str, Any] | None = None) -> Pass:
        """Join the current pass, or create it (listing the folder through make_entries) when there
        is none, or when it is complete and new_pass_if_complete (a press of Queue). Racing servers
        all end up in the same pass: the pass file is created exclusively. With settings, a pass
        made from another folder or other settings is refused (SharedFolderError, naming both)."""
        problem = folder_problem(self.folder)
        if problem:
            raise SharedFolderError(problem)
        with self._lock, self._claims_io():
            self.failure = None
            for sub in ("owners", "tmp"):
                os.makedirs(os.path.join(self.folder, sub), exist_ok=True)
            self._clock.beat()
            entries: list[ImageEntry] | None = None
            known = 0  # a pass number known to exist although the listing (an NFS cache) may not show it yet
            for _ in range(200):
                number = max(latest_number(self.folder), known)
                current = self._read_pass(number) if number else None
                if number and current is None:
                    time.sleep(0.05)  # being written (file systems without hard links)
                    continue
                if current is not None and not (new_pass_if_complete and self._store_for(current).is_complete()):
                    why = refusal(self.name, current, directory, settings) if settings is not None else None
                    if why:
                        raise SharedFolderError(why)
                    self._use(current)
                    self._store().flush_pending()
                    return current
                if entries is None:
                    entries = list(make_entries())
                    if not 0 <= start_index < len(entries):
                        raise ValueError(f"start_index {start_index} is outside the {len(entries)} images")
                origin = made_from(directory, settings, entries) if settings is not None else {}
                created = create_pass(self.folder, number + 1, entries, start_index, self._pub, origin)
                if created is not None:
                    log.info("shared job %s: pass %s started with %d images", self.name, created.pass_id,
                             len(entries))
                    return self._use(created)
                known = number + 1  # another server created it first: join that one
            raise SharedFolderError(f"The pass file of the shared batch in '{self.folder}' stays unreadable: "
                                    "reset the batch.")

    @property
    def current_pass(self) -> Pass | None:
        return self._pass

    def _read_pass(self, number: int) -> Pass | None:
        if self._pass is not None and self._pass.number == number and os.path.isdir(self._pass.folder):
            return self._pass  # unchanged: no need to parse its file list again
        return read_pass(self.folder, number)

    @contextmanager
    def _claims_io(self) -> Iterator[None]:
        """An OSError of the claims folder (read-only, full, unreachable) becomes a ClaimsFolderError
        naming the folder; a reset elsewhere stays a JobGoneError."""
        try:
            yield
        except OSError as exc:
            raise ClaimsFolderError(self.folder, exc) from exc

    def _store_for(self, p: Pass) -> ClaimStore:
        if self._claims is not None and self._pass is not None and self._pass.pass_id == p.pass_id:
            return self._claims
        return ClaimStore(p.folder, [e.rel_path for e in p.entries], p.start_index, self._pub, self._clock,
                          self.lease_s)

    def _use(self, p: Pass) -> Pass:
        self._claims = self._store_for(p)
        self._pass = p
        return p

    def _store(self) -> ClaimStore:
        if self._claims is None:
            raise RuntimeError("open_pass() first")
        return self._claims

    # ----- claims ------------------------------------------------------------------------------
    def claim_next(self) -> Claim | None:
        """The next image for this server, claimed; None when none is left to take now (all
        finished, or the rest held by live servers). Raises JobStoppedError when a stop-all request
        is on, JobGoneError after another server's reset, ClaimsFolderError when the claims folder
        fails (here or in the renewal thread since the last press)."""
        if self.failure is not None:
            raise self.failure
        stop = self.stop_request()
        if stop is not None:
            raise JobStoppedError(stop)
        with self._claims_io():
            store = self._store()
            store.flush_pending()
            claim = store.claim_next()
        if claim is not None:
            self._start_renewer()
        return claim

    def renew(self, index: int) -> str:
        """Extend the lease now (the renewal thread does it every lease/3): "ok", "lost",
        "done_elsewhere" or "gone" (see ClaimStore.renew)."""
        with self._claims_io():
            return self._store().renew(index)

    def fence(self, index: int) -> str:
        """Right before writing a result of image index: "ok" when this server may (see claim_holding)."""
        with self._claims_io():
            return self._store().fence(index)

    def complete(self, index: int, outcome: str, reason: str = "") -> bool:
        """outcome "done" or "skipped" (reason kept for everyone); False when another server
        recorded the image first or our claim was lost (this run was a redo). ClaimsFolderError:
        the record stays pending and is written at the next chance."""
        with self._claims_io():
            return self._store().complete(index, outcome, reason)

    def release(self, index: int) -> bool:
        """Give a claimed image back unfinished (Stop/Cancel before or during its run)."""
        with self._claims_io():
            return self._store().release(index)

    def forget(self, index: int) -> None:
        """Stop holding an image without writing (the claims folder failed: it expires for the others)."""
        self._store().forget(index)

    def progress(self) -> dict[str, Any]:
        """{done, skipped, claimed, total, mine, pass_id, servers}: across servers, and this one's part."""
        store = self._store()
        with self._claims_io():
            info: dict[str, Any] = store.progress()
            info["servers"] = len(self.participants())
        info["pass_id"] = self._pass.pass_id if self._pass else ""
        return info

    def skipped_files(self) -> list[dict[str, Any]]:
        return self._store().skipped_files()

    def is_complete(self) -> bool:
        """Every image of the pass has a done record (the only end of a shared chain but a stop)."""
        with self._claims_io():
            return self._store().is_complete()

    def participants(self) -> list[str]:
        """Owner ids whose heartbeat is younger than two leases (servers taking part now)."""
        folder, now, found = os.path.join(self.folder, "owners"), self._clock.now(), []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            try:
                if now - os.stat(os.path.join(folder, name)).st_mtime < 2 * self.lease_s:
                    found.append(name)
            except OSError:
                continue
        return found

    # ----- stop all, reset -----------------------------------------------------------------------
    def request_stop(self, reason: str, file: str = "") -> bool:
        """Stop the shared batch on every server (each checks before claiming). The first request
        is kept (its reason and file are what every server shows); True when it was this one."""
        os.makedirs(os.path.join(self.folder, "tmp"), exist_ok=True)
        record = {"reason": reason, "file": file, "by": self.owner, "at": time.time(),
                  "pass_id": self._pass.pass_id if self._pass else ""}
        return self._pub.publish(os.path.join(self.folder, "stop.json"), record)

    def stop_request(self) -> dict[str, Any] | None:
        record = read_record(os.path.join(self.folder, "stop.json"))
        return None if record is None else {"reason": "", "file": "", "by": "", **record.data}

    def clear_stop(self) -> None:
        """Lift a stop-all request (a press of Queue with Continue): progress is kept."""
        try:
            os.unlink(os.path.join(self.folder, "stop.json"))
        except FileNotFoundError:
            pass

    def reset(self) -> bool:
        """Forget the shared progress for every server: the job folder is renamed aside in one step
        (servers in the middle of an image then see "gone"), then deleted. False when there was none."""
        aside = os.path.join(os.path.dirname(self.folder),
                             f".{os.path.basename(self.folder)}.reset-{unique_name(self.owner)}")
        with self._lock:
            self._pass, self._claims = None, None
            try:
                os.rename(self.folder, aside)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ESTALE):
                    return False
                raise
        shutil.rmtree(aside, ignore_errors=True)
        return True

    # ----- keeping claims alive ----------------------------------------------------------------
    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is None and not self._closed and self.auto_renew:
                self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                                 name=f"batch-image-lease-{self.owner}")
                self._renewer.start()

    def _renew_loop(self) -> None:
        """Every lease/3: heartbeat, then renew each claim held and write pending done records;
        report a lost claim once. A failing claims folder is kept as self.failure (the chain stops
        at its next claim); renewal goes on, and a folder that comes back clears nothing by itself."""
        reported: set[tuple[str, int]] = set()
        while not self._wake.wait(self.lease_s / 3):
            store = self._claims
            try:
                try:
                    self._clock.beat()
                except OSError:
                    pass  # job folder reset or unreachable: the renewals below say which
                for index in store.held() if store is not None else {}:
                    result = store.renew(index)
                    key = (store.folder, index)
                    if result != RENEW_OK and key not in reported:
                        reported.add(key)
                        log.warning("shared job: lost the claim on image %d (%s)", index, result)
                        if self.on_lost is not None:
                            self.on_lost(index, result)
                if store is not None:
                    store.flush_pending()
            except JobGoneError:
                continue
            except OSError as exc:
                if self.failure is None:
                    self.failure = ClaimsFolderError(self.folder, exc)
                    log.error("shared job %s: %s", self.name, self.failure)
            except Exception:
                log.exception("shared job: renewing the claims failed")

    def close(self) -> None:
        """Stop renewing (claims still held then expire after their lease) and drop the heartbeat."""
        with self._lock:
            self._closed = True
            self._wake.set()
            thread = self._renewer
        if thread is not None:
            thread.join()
        try:
            os.unlink(self._clock.path)
        except OSError:
            pass
