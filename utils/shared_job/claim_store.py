"""Which server processes which image of a shared pass: claims with a lease, in a shared folder.

Layout of one pass's folder:
    claims/<index>.<gen>   generation gen of the image's claim chain; each published exclusively
    done/<index>           the image is finished (published exclusively: the first finisher wins)
    skipped/<index>        the same record again, for skipped images only (the list of skips)

A claim chain is append-only: nothing in it is renamed, rewritten or deleted. Its last
generation says who holds the image:
    {"kind": "claim", owner, lease_s}  held while its mtime is younger than lease_s (renew: utime)
    {"kind": "free"}                   given back (release): the next generation may be claimed
    {"kind": "done"}                   finished: nobody claims it again
Taking an image = publishing the generation after the last one, allowed when that one is free,
or a claim whose lease ran out (takeover). Of several servers racing for a generation exactly
one creates it (see shared_files): the chain always has one last generation, one holder.

Guarantees:
- Recorded once: done/<index> is created once; the first finisher is recorded, every other
  complete() of that image returns False.
- At most one redo per lapse: a second server starts an image only after its holder released it
  (Stop, Cancel: redone from the start on purpose) or went a whole lease without renewing (killed,
  frozen, cut off from the file server; renewals come every lease/3). Servers racing to take the
  expired claim create one generation, so a server killed while holding k images costs k redos.
- The lapsed holder may still be running the image: it learns at its next renew ("lost", or
  "done_elsewhere"); if both runs finish, the first is recorded (above).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Any, NamedTuple

from .files import FsClock, Publisher, read_record

CLAIM, FREE, DONE = "claim", "free", "done"  # kinds of a generation
MINE, HELD, FINISHED, OPEN, UNCLAIMED = "mine", "held", "finished", "open", "unclaimed"  # states of an image
OUTCOMES = ("done", "skipped")
RENEW_OK, RENEW_LOST, RENEW_DONE_ELSEWHERE, RENEW_GONE = "ok", "lost", "done_elsewhere", "gone"
RESEED_AFTER = 64  # finished images met one by one before the done/ folder is listed again
_GONE = {errno.ENOENT, errno.ESTALE}


class JobGoneError(RuntimeError):
    """The pass's folder disappeared: another server reset the shared batch."""


class Claim(NamedTuple):
    index: int
    rel_path: str


class ClaimStore:
    """Claims of one pass for one owner; thread-safe. rel_paths[i] is image i of the pass."""

    def __init__(self, folder: str, rel_paths: list[str], start_index: int, publisher: Publisher,
                 clock: FsClock, lease_s: float) -> None:
        self.folder = folder
        self.rel_paths = rel_paths
        self.start_index = start_index
        self.owner = publisher.owner
        self.lease_s = lease_s
        self._pub = publisher
        self._clock = clock
        self._lock = threading.RLock()
        self._cursor = start_index  # every image before it is finished
        self._finished: set[int] = set()  # finished images at or after the cursor
        self._floor: dict[int, int] = {}  # image -> a generation known to exist (skip reading older ones)
        self._held: dict[int, int] = {}  # image -> generation of our claim
        self._seeded = False
        self.mine = 0  # images this owner finished (and was first to record) in this pass

    # ----- paths -------------------------------------------------------------------------
    def _claim_path(self, index: int, gen: int) -> str:
        return os.path.join(self.folder, "claims", f"{index}.{gen}")

    def _done_path(self, index: int) -> str:
        return os.path.join(self.folder, "done", str(index))

    def _publish(self, path: str, record: dict[str, Any]) -> bool:
        try:
            return self._pub.publish(path, record)
        except OSError as exc:
            if exc.errno in _GONE and not os.path.isdir(self.folder):
                raise JobGoneError(f"the shared pass in '{self.folder}' is gone (reset by another server)") from exc
            raise

    def _listdir(self, name: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.folder, name))
        except OSError as exc:
            if exc.errno in _GONE:
                raise JobGoneError(f"the shared pass in '{self.folder}' is gone (reset by another server)") from exc
            raise

    # ----- taking an image ---------------------------------------------------------------
    def claim_next(self) -> Claim | None:
        """The first image nobody holds or finished, now claimed by us; None when there is none
        (all finished, or the rest held by live servers). Reads only images from our cursor on,
        most of which the done/ listing (once, then after RESEED_AFTER surprises) already rules out."""
        return self._scan(take=True)[0]

    def _scan(self, take: bool) -> tuple[Claim | None, int]:
        """Walk the images from the cursor: (the image taken, with take; images held by live servers).

        Claims are only ever taken at the lowest free index, so the images ever claimed are a
        prefix of the pass: without take, the walk stops at the first image never claimed."""
        with self._lock:
            if not self._seeded:
                self._seed()
            surprises, held, index = 0, len(self._held), self._cursor
            while index < len(self.rel_paths):
                if index in self._finished or index in self._held:
                    index += 1
                    continue
                state, gen = self._chain(index, take)
                if state == MINE:
                    self._held[index] = gen
                    return Claim(index, self.rel_paths[index]), held + 1
                if state == UNCLAIMED:
                    break
                held += state == HELD
                if state == FINISHED:
                    surprises += 1
                    if surprises >= RESEED_AFTER:
                        self._seed()
                        surprises = 0
                index += 1
            self._advance()
            return None, held

    def _seed(self) -> None:
        """Learn the finished images from one listing of done/ (a joiner skips them unread)."""
        for name in self._listdir("done"):
            if name.isdigit() and int(name) >= self._cursor:
                self._finished.add(int(name))
        self._seeded = True
        self._advance()

    def _advance(self) -> None:
        while self._cursor in self._finished:
            self._finished.discard(self._cursor)
            self._floor.pop(self._cursor, None)
            self._cursor += 1

    def _chain(self, index: int, take: bool) -> tuple[str, int]:
        """Walk the image's claim chain from the last generation we knew: (state, generation).
        With take, an image that is free (or whose claim expired) becomes ours: (MINE, our gen)."""
        gen, last_claim, races = self._floor.get(index, 0), None, 0
        while True:
            record = read_record(self._claim_path(index, gen))
            if record is None:  # generation gen does not exist yet
                if last_claim is not None and not self._expired(last_claim):
                    self._floor[index] = gen - 1
                    return HELD, gen - 1  # by a live server
                if not take:
                    if gen > 0 and last_claim is not None and os.path.exists(self._done_path(index)):
                        self._finished.add(index)  # finished, its chain not closed (the finisher died)
                        return FINISHED, gen
                    return (UNCLAIMED if gen == 0 else OPEN), gen
                mine = {"kind": CLAIM, "owner": self.owner, "lease_s": self.lease_s, "at": time.time()}
                if not self._publish(self._claim_path(index, gen), mine):
                    races += 1  # another server created it first: read what it is
                    if races > 3:  # exists, yet not readable here (a stale NFS cache): try later
                        return HELD, gen
                    continue
                if gen > 0 and os.path.exists(self._done_path(index)):
                    # Its holder finished after its lease ran out, and died before closing the chain.
                    self._publish(self._claim_path(index, gen + 1), {"kind": DONE, "owner": self.owner})
                    self._finished.add(index)
                    return FINISHED, gen + 1
                self._floor[index] = gen
                return MINE, gen
            kind = record.data.get("kind", CLAIM)  # empty: being written (no-link file systems)
            if kind == DONE:
                self._finished.add(index)
                return FINISHED, gen
            last_claim = record if kind == CLAIM else None
            gen += 1

    def _expired(self, claim: Any) -> bool:
        lease = claim.data.get("lease_s")
        lease = float(lease) if isinstance(lease, (int, float)) and lease > 0 else self.lease_s
        return self._clock.now() - claim.mtime > lease

    # ----- holding and finishing -------------------------------------------------------------
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
        if after is None:
            return RENEW_OK
        if after.data.get("kind") == DONE or os.path.exists(self._done_path(index)):
            return RENEW_DONE_ELSEWHERE
        return RENEW_LOST

    def complete(self, index: int, outcome: str, reason: str = "") -> bool:
        """Record image index as finished; True when this call recorded it, False when another
        server had finished it first (after taking our expired claim): then our run was a redo."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._lock:
            gen = self._held.pop(index, None)
            if gen is None:
                raise KeyError(f"image {index} is not claimed by {self.owner}")
            record = {"outcome": outcome, "reason": reason, "file": self.rel_paths[index],
                      "owner": self.owner, "at": time.time()}
            won = self._publish(self._done_path(index), record)
            if won:
                if outcome == "skipped":
                    self._publish(os.path.join(self.folder, "skipped", str(index)), record)
                self._close_chain(index, gen + 1)
                self.mine += 1
            self._finished.add(index)
            self._advance()
            return won

    def _close_chain(self, index: int, gen: int) -> None:
        """Append the "done" generation, so the chain itself says finished to every reader."""
        while not self._publish(self._claim_path(index, gen), {"kind": DONE, "owner": self.owner}):
            record = read_record(self._claim_path(index, gen))
            if record is not None and record.data.get("kind") == DONE:
                return
            gen += 1

    def release(self, index: int) -> bool:
        """Give the image back unfinished (Stop or Cancel before or during its run): anyone may take
        it now. False when our claim had already been taken over."""
        with self._lock:
            gen = self._held.pop(index, None)
            if gen is None:
                return False
            self._floor[index] = gen + 1
            return self._publish(self._claim_path(index, gen + 1), {"kind": FREE, "owner": self.owner})

    # ----- what everyone did -------------------------------------------------------------------
    def progress(self) -> dict[str, int]:
        """done / skipped / claimed (held under a live lease, by any server) / total / mine.

        Incremental: reads the chains of the images finished or taken since the last call, and
        lists skipped/ (skips are few). A joiner's first call lists done/ once."""
        claimed = self._scan(take=False)[1]
        with self._lock:
            finished = self._cursor - self.start_index + len(self._finished)
        skipped = sum(1 for n in self._listdir("skipped") if n.isdigit())
        return {"done": finished - skipped, "skipped": skipped, "claimed": claimed,
                "total": len(self.rel_paths) - self.start_index, "mine": self.mine}

    def skipped_files(self) -> list[dict[str, Any]]:
        """[{"file", "reason", "owner", ...}] of every skipped image, in batch order."""
        names = sorted(int(n) for n in self._listdir("skipped") if n.isdigit())
        records = (read_record(os.path.join(self.folder, "skipped", str(i))) for i in names)
        return [r.data for r in records if r is not None]

    def is_complete(self) -> bool:
        self._scan(take=False)
        with self._lock:
            return self._cursor >= len(self.rel_paths)
