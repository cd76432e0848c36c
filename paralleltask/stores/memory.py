"""MemoryStore: the store's roles in this process's memory, for tests."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

from .. import serde
from .base import MISS, Store


class MemoryStore(Store):
    """Cache entries in a dict, values kept pickled (so a hit is a copy, as from LMDB).

    Lives and dies with the process; not shared between processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[float, bytes]] = {}

    def cache_get(self, key: bytes) -> Any:
        entry = self._cache.get(key)
        if entry is None or (entry[0] and entry[0] <= time.time()):
            return MISS
        try:
            return pickle.loads(entry[1])
        except Exception:
            return MISS

    def cache_put(
        self, key: bytes, value: Any, ttl: float | None, pickled: bytes | None = None
    ) -> None:
        blob = serde.dumps(value) if pickled is None else pickled
        with self._lock:
            self._cache[key] = (time.time() + ttl if ttl else 0.0, blob)

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
            expired = [k for k, (expiry, _) in self._cache.items() if expiry and expiry <= now]
            for key in expired:
                del self._cache[key]
        return len(expired)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._cache)} cache entries)"
