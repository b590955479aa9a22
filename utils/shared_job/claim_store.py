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
  "done_elsewhere") and at the fence before its result is written (claim_holding), which
  then writes nothing; if both runs finish anyway (an output node without a fence), the
  first is recorded (above).
- A takeover re-reads the lease after publishing its generation: if the holder renewed in
  between, the image is handed straight back (a "free" generation), so a holder that passed
  its fence is never run beside a taker.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, NamedTuple

from .claim_holding import (
    CLAIM,
    DONE,
    FREE,
    OUTCOMES,
    RENEW_DONE_ELSEWHERE,
    RENEW_GONE,
    RENEW_LOST,
    RENEW_OK,
    HeldClaims,
    JobGoneError,
)
from .files import FsClock, Publisher, Record, read_record

MINE, HELD, FINISHED, OPEN, UNCLAIMED = "mine", "held", "finished", "open", "unclaimed"  # states of an image
RESEED_AFTER = 64  # finished images met one by one before the done/ folder is listed again

__all__ = ["CLAIM", "DONE", "FREE", "OUTCOMES", "RENEW_DONE_ELSEWHERE", "RENEW_GONE", "RENEW_LOST", "RENEW_OK",
           "Claim", "ClaimStore", "JobGoneError"]


class Claim(NamedTuple):
    index: int
    rel_path: str


class ClaimStore(HeldClaims):
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
        self._cursor = start_index
        self._finished: set[int] = set()
        self._floor: dict[int, int] = {}
        self._held: dict[int, int] = {}
        self._seeded = False
        self.mine = 0  # images this owner finished (and was first to record) in this pass
        self._init_holding()

    def _listdir(self, name: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.folder, name))
        except OSError as exc:
            gone = self._gone(exc)
            if gone is not None:
                raise gone from exc
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
                if last_claim is not None and not self._still_expired(index, gen - 1, last_claim):
                    # Its holder renewed between our look and our publish, so it may be passing its
                    # fence (claim_holding) right now: hand the image straight back, never run both.
                    self._publish(self._claim_path(index, gen + 1), {"kind": FREE, "owner": self.owner})
                    self._floor[index] = gen + 1
                    return HELD, gen - 1
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

    def _still_expired(self, index: int, gen: int, claim: Record) -> bool:
        try:
            mtime = os.stat(self._claim_path(index, gen)).st_mtime
        except FileNotFoundError:
            return True
        return self._expired(Record(claim.data, mtime))

    def _expired(self, claim: Any) -> bool:
        lease = claim.data.get("lease_s")
        lease = float(lease) if isinstance(lease, (int, float)) and lease > 0 else self.lease_s
        return self._clock.now() - claim.mtime > lease

    # ----- what everyone did -------------------------------------------------------------------
    def progress(self) -> dict[str, int]:
        """done / skipped / claimed (held under a live lease, by any server) / total / mine.

        Incremental: reads the chains of the images finished or taken since the last call, and
        lists skipped/ (skips are few). A joiner's first call lists done/ once."""
        claimed = self._scan(take=False)[1]
        total = len(self.rel_paths) - self.start_index
        with self._lock:
            finished = min(total, self._cursor - self.start_index + len(self._finished))
        skipped = min(finished, sum(1 for n in self._listdir("skipped") if n.isdigit()))
        return {"done": finished - skipped, "skipped": skipped, "claimed": min(claimed, total - finished),
                "total": total, "mine": self.mine}

    def skipped_files(self) -> list[dict[str, Any]]:
        """[{"file", "reason", "owner", ...}] of every skipped image, in batch order."""
        names = sorted(int(n) for n in self._listdir("skipped") if n.isdigit())
        records = (read_record(os.path.join(self.folder, "skipped", str(i))) for i in names)
        return [r.data for r in records if r is not None]

    def is_complete(self) -> bool:
        self._scan(take=False)
        with self._lock:
            return self._cursor >= len(self.rel_paths)
