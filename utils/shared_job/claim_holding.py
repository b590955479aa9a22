"""Holding a claimed image until it is finished: renewing the lease, the fence a result passes
right before it is written, recording the image done, giving it back.

The fence is what makes "never saved twice" hold when a holder loses its claim (frozen, cut off,
starved of CPU for a lease): a result may be written only after this owner created the next
generation of the image's claim chain itself. A taker needs that same generation, and of two
servers creating one name exactly one succeeds (files.py), so the holder writes or the taker
runs the image, never both.

Recording "done" is kept until it lands: a done record that cannot be written (the claims folder
turned read-only, the share went away) stays pending, the claim stays held and renewed, and the
record is written at the next chance (the renewal thread, the next claim).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Any

from .files import Publisher, read_record

CLAIM, FREE, DONE = "claim", "free", "done"  # kinds of a generation
OUTCOMES = ("done", "skipped")
RENEW_OK, RENEW_LOST, RENEW_DONE_ELSEWHERE, RENEW_GONE = "ok", "lost", "done_elsewhere", "gone"
_GONE = {errno.ENOENT, errno.ESTALE}


class JobGoneError(RuntimeError):
    """The pass's folder disappeared: another server reset the shared batch."""


def read_kind(path: str) -> str | None:
    """The kind of a generation file; None when it does not exist (empty: being written = a claim)."""
    record = read_record(path)
    return None if record is None else str(record.data.get("kind", CLAIM))


class HeldClaims:
    """The images one owner holds in one pass (the part of ClaimStore that never takes an image)."""

    folder: str
    owner: str
    rel_paths: list[str]
    _pub: Publisher
    _lock: threading.RLock
    lease_s: float
    _held: dict[int, int]  # image -> generation of our claim
    _floor: dict[int, int]  # image -> a generation known to exist (skip reading older ones)
    _cursor: int  # every image before it is finished
    _finished: set[int]  # finished images at or after the cursor
    mine: int

    def _init_holding(self) -> None:
        self._recorded: set[int] = set()  # images this owner recorded (a second saver may still write)
        self._pending: dict[int, tuple[str, str]] = {}  # done records not written yet: (outcome, reason)

    # ----- paths -------------------------------------------------------------------------
    def _claim_path(self, index: int, gen: int) -> str:
        return os.path.join(self.folder, "claims", f"{index}.{gen}")

    def _done_path(self, index: int) -> str:
        return os.path.join(self.folder, "done", str(index))

    def _gone(self, exc: OSError) -> JobGoneError | None:
        if exc.errno in _GONE and not os.path.isdir(self.folder):
            return JobGoneError(f"the shared pass in '{self.folder}' is gone (reset by another server)")
        return None

    def _publish(self, path: str, record: dict[str, Any]) -> bool:
        try:
            return self._pub.publish(path, record)
        except OSError as exc:
            gone = self._gone(exc)
            if gone is not None:
                raise gone from exc
            raise

    # ----- holding -----------------------------------------------------------------------
    def held(self) -> dict[int, int]:
        with self._lock:
            return dict(self._held)

    def renew(self, index: int) -> str:
        """Extend our claim's lease; "ok", or how it was lost: "lost" (taken over after our lease
        ran out), "done_elsewhere" (and already finished by the taker), "gone" (batch reset)."""
        with self._lock:
            gen = self._held.get(index)
        if gen is None:
            return RENEW_LOST
        try:
            os.utime(self._claim_path(index, gen), None)  # None: the file server's time (NFS)
        except OSError as exc:
            if exc.errno in _GONE:
                return RENEW_GONE
            raise
        # Checked after the utime: a taker that decided before it published the next generation.
        after = read_record(self._claim_path(index, gen + 1))
        if after is None or (after.data.get("kind") == CLAIM and after.data.get("owner") == self.owner):
            return RENEW_OK  # nobody after us, or our own fence generation (published meanwhile)
        if after.data.get("kind") == DONE or os.path.exists(self._done_path(index)):
            return RENEW_DONE_ELSEWHERE
        return RENEW_LOST

    def fence(self, index: int) -> str:
        """Right before a result of image index is written: "ok" when this owner may write it, else
        why not. The check is the exclusive creation of the claim's next generation (a fresh claim
        of ours), decided by the file server itself: no cache of "that file does not exist" (NFS)
        can make a lost claim look held, and a taker racing for that generation loses to us or
        wins (then we write nothing). A claim found lost is dropped: neither recorded nor renewed.
        An image this owner recorded already (a second saver of the same prompt) may be written."""
        with self._lock:
            if index in self._recorded:
                return RENEW_OK
            gen = self._held.get(index)
        if gen is None:
            return RENEW_LOST
        mine = {"kind": CLAIM, "owner": self.owner, "lease_s": self.lease_s, "at": time.time(), "fence": True}
        try:
            if self._publish(self._claim_path(index, gen + 1), mine):
                with self._lock:
                    if self._held.get(index) == gen:
                        self._held[index] = gen + 1
                return RENEW_OK
        except JobGoneError:
            self.forget(index)
            return RENEW_GONE
        after = read_kind(self._claim_path(index, gen + 1))
        self.forget(index)
        return RENEW_DONE_ELSEWHERE if after == DONE or os.path.exists(self._done_path(index)) else RENEW_LOST

    def forget(self, index: int) -> None:
        """Stop holding image index without writing anything (its lease runs out for the others)."""
        with self._lock:
            if index not in self._pending:
                self._held.pop(index, None)

    # ----- finishing ---------------------------------------------------------------------
    def complete(self, index: int, outcome: str, reason: str = "") -> bool:
        """Record image index as finished; True when this owner recorded it (now or earlier),
        False when another server had finished it first or the claim was lost: our run was a redo.
        An OSError leaves the record pending (see flush_pending) and is raised."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._lock:
            if index in self._recorded:
                return True
            gen = self._held.get(index)
            if gen is None:
                return False
            outcome, reason = self._pending.setdefault(index, (outcome, reason))
            record = {"outcome": outcome, "reason": reason, "file": self.rel_paths[index],
                      "owner": self.owner, "at": time.time()}
            won = self._publish(self._done_path(index), record)
            if won:
                if outcome == "skipped":
                    self._publish(os.path.join(self.folder, "skipped", str(index)), record)
                self._close_chain(index, gen + 1)
                self.mine += 1
                self._recorded.add(index)
            self._pending.pop(index, None)
            self._held.pop(index, None)
            self._finished_now(index)
            return won

    def flush_pending(self) -> None:
        """Write the done records that could not be written before (raises OSError again if not yet)."""
        with self._lock:
            pending = dict(self._pending)
        for index, (outcome, reason) in pending.items():
            self.complete(index, outcome, reason)

    def pending(self) -> list[int]:
        with self._lock:
            return sorted(self._pending)

    def _finished_now(self, index: int) -> None:
        """Image index is finished: past the cursor it is counted once (a redo of an image the
        cursor already passed must not be counted again: that made 433 / 400)."""
        if index >= self._cursor:
            self._finished.add(index)
        self._advance()

    def _advance(self) -> None:
        while self._cursor in self._finished:
            self._finished.discard(self._cursor)
            self._floor.pop(self._cursor, None)
            self._cursor += 1

    def _close_chain(self, index: int, gen: int) -> None:
        """Append the "done" generation, so the chain itself says finished to every reader."""
        while not self._publish(self._claim_path(index, gen), {"kind": DONE, "owner": self.owner}):
            if read_kind(self._claim_path(index, gen)) == DONE:
                return
            gen += 1

    def release(self, index: int) -> bool:
        """Give the image back unfinished (Stop or Cancel before or during its run): anyone may take
        it now. False when our claim had already been taken over (or the image was recorded)."""
        with self._lock:
            if index in self._pending:
                return False
            gen = self._held.pop(index, None)
            if gen is None:
                return False
            self._floor[index] = gen + 1
            return self._publish(self._claim_path(index, gen + 1), {"kind": FREE, "owner": self.owner})
