"""The store protocol: what a run asks of ``cache=`` (and, later, ``checkpointer=``).

Cache entries are keyed by bytes the run derives (task identity + ``key_func`` output,
hashed); a value is anything picklable; an entry may carry an expiry (monotonic wall
clock, ``time.time()``). A value that does not verify or will not load is a miss,
never a crash.
"""

from __future__ import annotations

import abc
from typing import Any

#: Returned by :meth:`Store.cache_get` for a miss.
MISS = object()


class Store(abc.ABC):
    """A place for cache entries (and checkpoints, when they arrive)."""

    @abc.abstractmethod
    def cache_get(self, key: bytes) -> Any:
        """The live value under ``key``, or :data:`MISS`."""

    @abc.abstractmethod
    def cache_put(
        self, key: bytes, value: Any, ttl: float | None, pickled: bytes | None = None
    ) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (None: until cleared);
        ``pickled``, if given, is ``value`` already pickled."""

    @abc.abstractmethod
    def cache_clear(self, prefixes: list[bytes] | None = None) -> None:
        """Drop the entries whose key starts with one of ``prefixes`` (all if None)."""

    @abc.abstractmethod
    def purge_expired(self) -> int:
        """Drop the expired entries; return how many."""

    def flush(self) -> None:  # noqa: B027 - stores that write at once have nothing to do
        """Wait until every put made so far is stored (the end of each run calls it)."""
