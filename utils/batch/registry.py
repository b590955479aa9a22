"""Every batch this ComfyUI process knows, in memory and saved on disk, found by key or by node.

Batches are loaded from disk on first use (after a restart) and kept in memory from then on;
the registry never decides anything about a batch's life (that is the controller's job).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from .batch import Batch, describe_saved
from .state import BatchSettings, StateStore


class BatchRegistry:
    """Not thread-safe on its own: the controller calls it under its lock."""

    def __init__(self, store_factory: Callable[[], StateStore]) -> None:
        self._store_factory = store_factory
        self._store: StateStore | None = None
        self._batches: dict[str, Batch] = {}

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def __iter__(self) -> Iterator[Batch]:
        return iter(list(self._batches.values()))

    def get(self, key: str) -> Batch | None:
        """In memory only: a batch that has run in this process."""
        return self._batches.get(key)

    def find(self, settings: BatchSettings) -> Batch | None:
        """The batch of these settings, from memory or from disk (after a restart)."""
        batch = self._batches.get(settings.key)
        if batch is None:
            state, entries = self.store.load(settings.key), self.store.load_snapshot(settings.key)
            if state is None or entries is None:
                return None
            batch = self._batches[settings.key] = Batch(settings, state, entries)
        return batch

    def put(self, batch: Batch) -> None:
        self._batches[batch.key] = batch

    def forget(self, key: str) -> Batch | None:
        """Remove key from memory and disk; returns the in-memory batch it was, if any."""
        self.store.delete(key)
        return self._batches.pop(key, None)

    def keys_of(self, node_id: str | None, workflow_id: str | None) -> list[str]:
        """Keys of the batches of node_id (None: all) in memory and on disk, narrowed to workflow_id
        if given. KeyError when node_id has none."""
        known = {b.key: (b.settings.node_id, b.settings.workflow_id) for b in self._batches.values()}
        for state in self.store.all_states():
            known.setdefault(state.key, (state.node_id, state.workflow_id))
        keys = [k for k, (node, workflow) in known.items()
                if (node_id is None or node == node_id) and (not workflow_id or workflow == workflow_id)]
        if node_id is not None and not keys:
            raise KeyError(node_id)
        return keys

    def status_rows(self) -> list[dict[str, Any]]:
        """Every batch in memory or on disk, newest first."""
        now = time.time()
        rows = {key: b.describe(now) for key, b in self._batches.items()}
        for state in self.store.all_states():
            if state.key not in rows:
                rows[state.key] = describe_saved(state, state.workflow_id, now)
        return sorted(rows.values(), key=lambda r: r["started_at"], reverse=True)

    def is_running(self, listing: tuple) -> bool:
        return any(b.going and b.settings.listing == listing for b in self._batches.values())

    def has_input(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(b.contains(real) for b in self._batches.values())
