"""The store protocol: what a run asks of ``cache=`` and of ``checkpointer=``.

Cache entries are keyed by bytes the run derives (task identity + ``key_func`` output,
hashed); a value is anything picklable; an entry may carry an expiry (``time.time()``
seconds). A cache value that does not verify or will not load is a miss, never a crash.

Checkpoints belong to threads (LangGraph's ``thread_id``). A thread is a sequence of
checkpoint records (dicts, numbered by ``seq``); each record may own *writes*: what
the run that started from it produced, one slot per task call (and one for the body),
so a run that failed or was killed can be replayed call by call. Writes are read one
slot at a time, so a resumed run never loads them all into memory.

Puts may be asynchronous (a writer thread commits them in groups): ``on_commit`` is
called once the put is durable, and :meth:`Store.flush` waits for every put so far.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

#: Returned by :meth:`Store.cache_get` and :meth:`Store.write_get` for a miss.
MISS = object()

OnCommit = Callable[[], None] | None


def thread_key(thread_id: str) -> bytes:
    """The fixed-size key prefix of a thread (LMDB keys are at most 511 bytes)."""
    return hashlib.sha256(thread_id.encode()).digest()[:16]


class Store(abc.ABC):
    """A place for cache entries and checkpoints."""

    # -- cache ------------------------------------------------------------------------

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

    # -- checkpoints ------------------------------------------------------------------

    @abc.abstractmethod
    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        """Add (or replace) the checkpoint ``record["seq"]`` of ``thread_id``."""

    @abc.abstractmethod
    def checkpoint_get(self, thread_id: str, seq: int | None = None) -> dict | None:
        """Checkpoint ``seq`` of the thread (None: the latest), or None if there is none."""

    @abc.abstractmethod
    def checkpoint_history(self, thread_id: str) -> Iterator[dict]:
        """The thread's checkpoints, newest first."""

    @abc.abstractmethod
    def write_put(
        self,
        thread_id: str,
        seq: int,
        slot: bytes,
        entry: tuple,
        on_commit: OnCommit = None,
    ) -> None:
        """Keep ``entry`` (a picklable tuple) in ``slot`` of checkpoint ``seq``'s writes."""

    @abc.abstractmethod
    def write_get(self, thread_id: str, seq: int, slot: bytes) -> Any:
        """The entry in ``slot`` of checkpoint ``seq``'s writes, or :data:`MISS`."""

    @abc.abstractmethod
    def write_items(
        self, thread_id: str, seq: int, prefix: bytes = b""
    ) -> Iterator[tuple[bytes, tuple]]:
        """``(slot, entry)`` for the writes of checkpoint ``seq`` whose slot starts with
        ``prefix``, in slot order; the slots come without the prefix."""

    @abc.abstractmethod
    def thread_delete(self, thread_id: str) -> None:
        """Forget the thread: its checkpoints and their writes."""

    def flush(self) -> None:  # noqa: B027 - stores that write at once have nothing to do
        """Wait until every put made so far is stored (the end of each run calls it)."""
