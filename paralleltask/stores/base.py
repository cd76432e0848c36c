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
called once the put is committed, with ``None``, or once its commit failed, with the
:class:`~paralleltask.errors.StoreError` saying why (a full disk, an I/O error, a map
that cannot grow): a put is never lost silently. :meth:`Store.flush` waits for every
put so far, and returns only after their ``on_commit`` calls. A run collects its own
failed puts in a :class:`Ledger`, so runs sharing a store learn only of their own.

A thread's checkpoints are numbered by the store (:meth:`Store.checkpoint_add`), so runs
in many processes on one thread never take the same ``seq`` (and never mix their
writes, which are keyed by it).
"""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StoreError

#: Returned by :meth:`Store.cache_get` and :meth:`Store.write_get` for a miss.
MISS = object()

#: Called once a put is committed (``None``) or failed (the :class:`StoreError`), on the
#: writer's thread, before :meth:`Store.flush` returns: short, and never waits on a store.
OnCommit = Callable[[StoreError | None], None] | None


class Ledger:
    """What one run put that could not be stored. Each put made for the run carries
    ``ledger.watch(what)`` as its ``on_commit``; the run asks :meth:`raise_lost` once it
    has flushed its store. One ledger per run: concurrent runs on one store (one writer
    thread, shared batches) each learn only of their own failed puts."""

    __slots__ = ("_lost",)

    def __init__(self) -> None:
        self._lost: list[tuple[Any, StoreError]] = []

    def watch(self, what: Any) -> Callable[[StoreError | None], None]:
        """The ``on_commit`` of a put described by ``what``, named in the error: a str,
        or a tuple :func:`describe` words only if the put fails (the hot path pays
        for no formatting)."""
        return functools.partial(self.settled, what)

    def settled(self, what: Any, error: StoreError | None) -> None:
        if error is not None:
            self._lost.append((what, error))  # list.append: atomic, from the writer thread

    def raise_lost(self, value: Any) -> None:
        """Raise one :class:`StoreError` naming every put that failed so far (the run's
        computed ``value`` attached), if any did."""
        if self._lost:
            raise self.error(value)

    def error(self, value: Any) -> StoreError | None:
        """The error :meth:`raise_lost` would raise (and forget what it names), or None."""
        if not self._lost:
            return None
        lost, self._lost = self._lost, []
        _, first = lost[0]
        names = "; ".join(describe(what) for what, _ in lost[:10])
        more = f" and {len(lost) - 10} more" if len(lost) > 10 else ""
        error = StoreError(
            f"{len(lost)} put(s) of this run were not stored ({names}{more}): {first}. "
            "The run's value is the error's .value; a resumed run recomputes what is missing.",
            path=first.path,
            value=value,
        )
        error.__cause__ = first.__cause__ or first
        return error


_KINDS = {b"o": "the result", b"e": "the error", b"i": "the interrupt", b"r": "the answers"}


def describe(what: Any) -> str:
    """Words for a put: a str as it is; ``("write", thread, seq, key, name)`` (a
    checkpoint write), ``("checkpoint", thread, seq, source)``, ``("cache", name)``."""
    if isinstance(what, str):
        return what
    if what[0] == "write":
        _, thread_id, seq, key, name = what
        kind = _KINDS.get(key[:1], "a write")
        slot = key[1:].hex() or "the body"
        return f"{kind} of {name!r} (thread {thread_id!r}, checkpoint {seq}, slot {slot})"
    if what[0] == "checkpoint":
        _, thread_id, _, source = what
        return f"the {source} checkpoint of thread {thread_id!r}"
    return f"the cache entry of {what[1]!r}"


def commit_error(path: str, count: int, exc: BaseException) -> StoreError:
    """The error of a commit of ``count`` puts that failed with ``exc``."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__  # already one of ours (from _retrying): name the real cause
    error = StoreError(
        f"store {path}: the commit of {count} put(s) failed: {type(exc).__name__}: {exc}",
        path=path,
    )
    error.__cause__ = exc
    return error


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
        self,
        key: bytes,
        value: Any,
        ttl: float | None,
        pickled: bytes | None = None,
        on_commit: OnCommit = None,
    ) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (None: until cleared);
        ``pickled``, if given, is ``value`` already pickled. Every later
        :meth:`cache_get` in this process sees the entry at once, committed or not."""

    @abc.abstractmethod
    def cache_clear(self, prefixes: list[bytes] | None = None) -> None:
        """Drop the entries whose key starts with one of ``prefixes`` (all if None)."""

    @abc.abstractmethod
    def purge_expired(self) -> int:
        """Drop the expired entries; return how many."""

    # -- checkpoints ------------------------------------------------------------------

    @abc.abstractmethod
    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        """Add (or replace) the checkpoint ``record["seq"]`` of ``thread_id`` (a seq
        :meth:`checkpoint_add` gave out: no other run writes it)."""

    @abc.abstractmethod
    def checkpoint_add(
        self,
        thread_id: str,
        make: Callable[[int], dict],
        write: bool = True,
        on_commit: OnCommit = None,
        wait: bool = False,
    ) -> dict:
        """Add the thread's next checkpoint and return it: ``make(seq)`` builds the
        record with a ``seq`` the store gives out once, to whichever process asks first
        (so runs in other processes on the thread never share it, nor mix their writes,
        which are keyed by it), then it is put like any other (``on_commit``); ``wait``:
        return once it is committed, raising :class:`StoreError` if that failed.
        ``write=False`` only takes the seq (the record is written later, if at all,
        with :meth:`checkpoint_put`). What ``make`` or pickling raises is raised, and
        nothing is written."""

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
