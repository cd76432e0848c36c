"""MemoryStore: the store's roles in this process's memory, for tests."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .. import _serde
from .base import MISS, OnCommit, Store


class CacheEntry(NamedTuple):
    """A cache entry: when it expires (0.0: never), and its value pickled."""

    expiry: float
    blob: bytes


class MemoryStore(Store):
    """Cache entries and checkpoints in dicts, values kept pickled (so a read is a
    copy, as from LMDB). Lives and dies with the process; not shared between processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[bytes, CacheEntry] = {}
        self._checkpoints: dict[str, dict[int, bytes]] = {}
        self._writes: dict[tuple[str, int], dict[bytes, bytes]] = {}
        self._reserved: dict[str, int] = {}  # thread -> the last seq checkpoint_add gave

    # -- cache ------------------------------------------------------------------------

    def cache_get(self, key: bytes) -> Any:
        entry = self._cache.get(key)
        if entry is None or (entry.expiry and entry.expiry <= time.time()):
            return MISS
        try:
            return pickle.loads(entry.blob)
        except Exception:
            return MISS

    def cache_put(
        self,
        key: bytes,
        value: Any,
        ttl: float | None,
        pickled: bytes | None = None,
        on_commit: OnCommit = None,
    ) -> None:
        blob = _serde.dumps(value) if pickled is None else pickled
        with self._lock:
            self._cache[key] = CacheEntry(time.time() + ttl if ttl else 0.0, blob)
        if on_commit is not None:
            on_commit(None)  # stored at once: nothing can fail later

    def cache_clear(self, prefixes: list[bytes] | None = None) -> None:
        with self._lock:
            if prefixes is None:
                self._cache.clear()
            else:
                prefix_tuple = tuple(prefixes)
                for key in [k for k in self._cache if k.startswith(prefix_tuple)]:
                    del self._cache[key]

    def purge_expired(self) -> int:
        now = time.time()
        with self._lock:
            expired = [k for k, e in self._cache.items() if e.expiry and e.expiry <= now]
            for key in expired:
                del self._cache[key]
        return len(expired)

    # -- checkpoints ------------------------------------------------------------------

    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        blob = _serde.dumps(record)
        with self._lock:
            self._checkpoints.setdefault(thread_id, {})[record["seq"]] = blob
        if on_commit is not None:
            on_commit(None)

    def checkpoint_add(
        self,
        thread_id: str,
        make: Callable[[int], dict],
        write: bool = True,
        on_commit: OnCommit = None,
        wait: bool = False,
    ) -> dict:
        with self._lock:  # the seq is taken and used under one lock: no run shares it
            records = self._checkpoints.get(thread_id) or {}
            last = max(max(records, default=-1), self._reserved.get(thread_id, -1))
            record = make(last + 1)
            blob = _serde.dumps(record) if write else None
            self._reserved[thread_id] = last + 1
            if blob is not None:
                self._checkpoints.setdefault(thread_id, {})[last + 1] = blob
        if on_commit is not None:
            on_commit(None)
        return record

    def checkpoint_get(self, thread_id: str, seq: int | None = None) -> dict | None:
        records = self._checkpoints.get(thread_id)
        if not records:
            return None
        blob = records.get(max(records) if seq is None else seq)
        return None if blob is None else pickle.loads(blob)

    def checkpoint_history(self, thread_id: str) -> Iterator[dict]:
        records = self._checkpoints.get(thread_id, {})
        for seq in sorted(records, reverse=True):
            yield pickle.loads(records[seq])

    def write_put(
        self, thread_id: str, seq: int, slot: bytes, entry: tuple, on_commit: OnCommit = None
    ) -> None:
        blob = _serde.dumps(entry)
        with self._lock:
            self._writes.setdefault((thread_id, seq), {})[slot] = blob
        if on_commit is not None:
            on_commit(None)

    def write_get(self, thread_id: str, seq: int, slot: bytes) -> Any:
        blob = self._writes.get((thread_id, seq), {}).get(slot)
        return MISS if blob is None else pickle.loads(blob)

    def write_items(
        self, thread_id: str, seq: int, prefix: bytes = b""
    ) -> Iterator[tuple[bytes, tuple]]:
        writes = self._writes.get((thread_id, seq), {})
        for slot in sorted(s for s in writes if s.startswith(prefix)):
            yield slot[len(prefix) :], pickle.loads(writes[slot])

    def thread_delete(self, thread_id: str) -> None:
        with self._lock:
            self._checkpoints.pop(thread_id, None)
            self._reserved.pop(thread_id, None)
            for key in [k for k in self._writes if k[0] == thread_id]:
                del self._writes[key]

    def __repr__(self) -> str:
        return (
            f"MemoryStore({len(self._cache)} cache entries, "
            f"{len(self._checkpoints)} checkpointed threads)"
        )
