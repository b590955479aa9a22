"""File primitives for servers that coordinate through a shared folder (local disk, NFS, SMB).

Every record that decides something (a claim, a finished image, a pass's file list) is
published with one atomic, exclusive operation, so exactly one of several servers racing for a
name wins, and nobody reads a half-written record:

- The text goes to a unique temporary file, then link(2) gives it its real name. link fails with
  EEXIST when the name exists, on the server side (NFS, SMB) as on a local disk. When an NFS
  reply is lost and the retransmitted link answers EEXIST, the link count of our temporary file
  (2) still tells that our link landed (the method of open(2)'s O_EXCL notes).
- File systems without hard links get O_CREAT|O_EXCL instead (atomic on NFSv3+ and SMB too);
  a reader may then see the record empty for a moment, and callers treat that as "taken,
  details unknown".

Time: a lease is judged by the claim file's mtime, which the file server sets, against "now" on
that same clock (FsClock), so servers whose clocks differ still agree (see FsClock).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
_counter = itertools.count()


def new_owner_id() -> str:
    """Host, pid and randomness: unique across servers, restarts and objects of one process."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def unique_name(owner: str) -> str:
    return f"{owner}-{next(_counter)}-{secrets.token_hex(3)}"


class Publisher:
    """Publishes records exclusively under their final names; tmp_dir must be on the same file system."""

    def __init__(self, tmp_dir: str, owner: str) -> None:
        self.tmp_dir = tmp_dir
        self.owner = owner
        self.use_links = True

    def publish(self, path: str, record: dict[str, Any]) -> bool:
        """True when this call created path; False when it existed. Raises OSError otherwise
        (FileNotFoundError: the folder is gone, e.g. the job was reset)."""
        text = json.dumps(record)
        if not self.use_links:
            return _create_exclusive(path, text)
        tmp = os.path.join(self.tmp_dir, unique_name(self.owner))
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            try:  # a retransmitted NFS link answers EEXIST although the first one worked
                return os.stat(tmp).st_nlink == 2
            except OSError:
                return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            self.use_links = False
            return _create_exclusive(path, text)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _create_exclusive(path: str, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


@dataclass(frozen=True)
class Record:
    """A published record: its JSON (empty when not written yet or unreadable) and mtime."""

    data: dict[str, Any]
    mtime: float


def read_record(path: str) -> Record | None:
    """None when path does not exist. open + fstat: on NFS, open revalidates the attributes
    (close-to-open), so the mtime is the server's current one, not a cached copy."""
    try:
        with open(path, encoding="utf-8") as fh:
            mtime = os.fstat(fh.fileno()).st_mtime
            text = fh.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESTALE):  # ESTALE: deleted under an NFS client
            return None
        return Record({}, time.time())  # exists but unreadable now: taken, details unknown
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    return Record(data if isinstance(data, dict) else {}, mtime)


class FsClock:
    """The file server's clock, as seen through mtimes.

    A claim's mtime is set by the server that stores it (on NFS, create and utime(path, None)
    use the server's time), so its age is measured against the server's "now": we touch a
    heartbeat file of our own, read its mtime back and keep the offset to the local clock.
    Servers whose own clocks are minutes apart still agree when a lease ran out. (SMB clients
    send their own time with utime: there, keep the servers' clocks in sync, e.g. NTP, to well
    within the lease.)
    """

    def __init__(self, heartbeat_path: str, refresh_s: float, local_clock: Callable[[], float] = time.time) -> None:
        self.path = heartbeat_path
        self.refresh_s = refresh_s
        self.local_clock = local_clock  # this machine's clock (replaceable, to test a skewed one)
        self._offset = 0.0
        self._measured_at = -float("inf")
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Touch the heartbeat (also shows that this server is alive) and re-measure the offset."""
        before = self.local_clock()
        try:
            os.utime(self.path, None)
        except FileNotFoundError:
            with open(self.path, "a", encoding="utf-8"):
                pass
        mtime = os.stat(self.path).st_mtime
        after = self.local_clock()
        with self._lock:
            self._offset = mtime - (before + after) / 2
            self._measured_at = after

    def now(self) -> float:
        """Current time on the file server's clock (re-measured at most every refresh_s)."""
        with self._lock:
            stale = self.local_clock() - self._measured_at > self.refresh_s
        if stale:
            try:
                self.beat()
            except OSError:
                pass  # keep the last offset; the caller fails on its own file operation if it must
        with self._lock:
            return self.local_clock() + self._offset
