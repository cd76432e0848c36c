"""LMDBStore: cache entries and checkpoints in one LMDB environment on disk.

One file serves many processes at once (LMDB's own locking); a process opens each path
once (``lmdb`` refuses a second ``Environment`` on the same path in one process, and an
environment must not cross ``fork()``: a child opens its own). Named databases keep the
roles apart (``cache``, ``checkpoints``, ``writes``); a small second environment,
``seqs-<boot id>/``, numbers each thread's checkpoints across processes (see
:func:`~._lmdbseqs.next_seq`). The map grows when full (``MapFullError``: double it, retry the
write) and follows another process's growth (``MapResizedError``: adopt the new size,
retry).
Stale reader slots left by crashed processes are cleared on open (``reader_check``).

What the store refuses at open (``_lmdbopen.py``: a folder of another user's or that
others may write, a data file empty or cut short, one LMDB will not open) and every
LMDB error later are one :class:`~paralleltask.errors.StoreError` naming the path (the
LMDB error as its ``__cause__``). A malformed cache value is a miss, a malformed
checkpoint a ``StoreError``. A store that is not writable by us opens read-only: reads
work, writes are refused.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import lmdb

from .. import _serde
from ..errors import StoreError
from ._format import UnverifiedValue, load_key, open_sealed, seal
from ._lmdbopen import Handle, handle_of, lmdb_failure, store_path, warn_read_only_cache
from ._lmdbseqs import SEQ, forget_seqs, next_seq
from ._lmdbwriter import PendingEntry, QueuedPut, Writer, pending_entries
from .base import MISS, OnCommit, Store, thread_key

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
_EXPIRY = struct.Struct("<d")  # seconds since the epoch; 0.0: never expires
_LAST_SEQ = SEQ.pack(2**64 - 1)


_UNREAD = object()  # (cache_get: no read made yet)


def _get(env: lmdb.Environment, db: Any, key: bytes) -> bytes | None:
    with env.begin(db=db) as txn:
        return txn.get(key)


def _pending_value(pending: dict[bytes, PendingEntry], key: bytes) -> Any:
    """The value of a cache entry this process queued and its writer has not committed
    yet, or MISS: so a call cached twice in a row runs once, as with MemoryStore and
    LangGraph. ``pending`` is the writer's dict (no getpid() on the hit path: a forked
    child's is emptied at fork)."""
    entry = pending.get(key)  # a dict read is atomic; no lock on the hit path
    if entry is None or (entry.expiry and entry.expiry <= time.time()):
        return MISS
    return pickle.loads(entry.blob)  # a copy, as a committed entry's read is


class LMDBStore(Store):
    """A store in the LMDB environment at ``path`` (a folder, created owner-only).

    Usable as ``entrypoint(cache=...)`` by any number of processes at once. Values are
    stamped and authenticated (see ``stores/_format.py``); one that does not verify or
    will not load counts as a miss. ``map_size`` is where the map starts: it grows.
    """

    def __init__(self, path: str | os.PathLike, *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        if not isinstance(map_size, int) or map_size <= 0:
            raise ValueError(f"map_size must be a positive int, got {map_size!r}")
        self.path = store_path(path)
        self.map_size = map_size
        self._key = load_key()
        self._handle()

    @property
    def read_only(self) -> bool:
        """Whether the store is not writable by us (opened for reading only)."""
        return self._handle().read_only

    def _check_writable(self, doing: str) -> None:
        """Refuse ``doing`` (a write) in a read-only store, before anything is queued."""
        if self._handle().read_only:
            raise StoreError(
                f"LMDB store {self.path} is read-only (its folder or files are not "
                f"writable by you): it can be read, not written; {doing} was refused",
                path=self.path,
            )

    def _read_db(self, handle: Handle, name: bytes) -> Any:
        """The named database, for a read; ``None`` in a read-only store that has none
        (nothing was ever written there, and a read-only store cannot create it)."""
        db = handle.dbs.get(name)
        if db is not None or not handle.read_only:
            return db or self._db(handle, name)

        def open_existing() -> Any:
            try:
                return handle.env.open_db(name, create=False)
            except lmdb.NotFoundError:
                return None

        db = self._retrying(handle, open_existing)
        if db is not None:
            handle.dbs[name] = db
        return db

    def _handle(self) -> Handle:
        return handle_of(self.path, self.map_size)

    def _db(self, handle: Handle, name: bytes) -> Any:
        db = handle.dbs.get(name)
        if db is None:
            db = handle.dbs[name] = self._retrying(handle, lambda: handle.env.open_db(name))
        return db

    # -- transactions that survive a map that is full or grew elsewhere -------------

    def _write(self, name: bytes, action) -> Any:
        handle = self._handle()
        with handle.lock:
            db = self._db(handle, name)

            def write() -> Any:
                with handle.env.begin(write=True) as txn:
                    return action(txn, db)

            return self._retrying(handle, write)

    @staticmethod
    def _retrying(handle: Handle, operation) -> Any:
        # The caller holds handle.lock (no write of ours is open) and no read: a resize
        # waits for the reads open in other threads (handle.readers), as LMDB requires.
        while True:
            try:
                try:
                    return operation()
                except lmdb.MapResizedError:  # adopt the size another process grew it to
                    handle.readers.resize(handle.env, 0)
                except lmdb.MapFullError:
                    handle.readers.resize(handle.env, handle.env.info()["map_size"] * 2)
            except lmdb.Error as exc:  # damaged pages, a read-only store, a failed
                raise lmdb_failure(handle, exc) from exc  # resize...: one type, the path

    # -- the cache --------------------------------------------------------------------

    def cache_get(self, key: bytes) -> Any:
        pending = pending_entries.get(self.path)  # this process's puts, not yet committed
        if pending:
            value = _pending_value(pending, key)
            if value is not MISS:
                return value
        handle = self._handle()
        db = handle.dbs.get(b"cache")
        data = _UNREAD
        if db is not None:
            try:  # the hot path of a hit: one read transaction beside any write
                with handle.readers, handle.env.begin(db=db) as txn:
                    data = txn.get(key)
            except lmdb.MapResizedError:
                pass  # read again below, once the map is adopted
            except lmdb.Error as exc:
                raise lmdb_failure(handle, exc) from exc
        if data is _UNREAD:
            with handle.lock:
                db = self._read_db(handle, b"cache")
                if db is None:  # a read-only store with no cache in it
                    return MISS
                data = self._retrying(handle, lambda: _get(handle.env, db, key))
        if data is None:
            return MISS
        try:
            (expiry,) = _EXPIRY.unpack_from(data)
        except struct.error:  # shorter than its expiry stamp: not an entry of ours
            return MISS
        if expiry and expiry <= time.time():
            return MISS
        try:
            return open_sealed(self._key, data[_EXPIRY.size :])
        except UnverifiedValue:
            return MISS
        except Exception:  # verified, but will not load here (another Python, a class
            return MISS  # that changed): a miss, and the next put replaces it

    def cache_put(
        self,
        key: bytes,
        value: Any,
        ttl: float | None,
        pickled: bytes | None = None,
        on_commit: OnCommit = None,
    ) -> None:
        """Queue the entry for the writer thread (see :meth:`flush`); this process's
        lookups see it at once (:func:`_pending_value`). A read-only store keeps no new
        entry (a warning, once): it is a cache, and the value is returned all the same."""
        handle = self._handle()
        if handle.read_only:
            warn_read_only_cache(self.path)
            return
        expiry = time.time() + ttl if ttl else 0.0
        blob = _serde.dumps(value) if pickled is None else pickled
        data = _EXPIRY.pack(expiry) + seal(self._key, value, blob)
        self._writer(handle).put_cache(key, data, expiry, blob, on_commit)

    def _writer(self, handle: Handle) -> Writer:
        if handle.writer is None:
            with handle.lock:
                if handle.writer is None:
                    handle.writer = Writer(self)
        return handle.writer

    def flush(self) -> None:
        """Wait until every queued put is committed (the end of each run calls it)."""
        writer = self._handle().writer
        if writer is not None:
            writer.flush()

    def _write_batch(self, batch: list[QueuedPut]) -> None:
        """Commit ``batch`` in one write transaction (the map grows if full)."""
        handle = self._handle()
        with handle.lock:
            dbs = {name: self._db(handle, name) for name in {put.name for put in batch}}

            def write() -> None:
                with handle.env.begin(write=True) as txn:
                    for put in batch:
                        txn.put(put.key, put.data, db=dbs[put.name])

            self._retrying(handle, write)

    def cache_clear(self, prefixes: list[bytes] | None = None) -> None:
        self._check_writable("clearing the cache")
        self.flush()  # a queued put must not land after the clear

        def clear(txn, db) -> None:
            if prefixes is None:
                txn.drop(db, delete=False)
                return
            cursor = txn.cursor(db=db)
            for prefix in prefixes:
                if cursor.set_range(prefix):
                    while cursor.key().startswith(prefix):
                        if not cursor.delete():
                            break

        self._write(b"cache", clear)

    def purge_expired(self) -> int:
        """Delete the entries whose time is up; how many. An entry too short to carry
        an expiry stamp is not ours to judge: it stays (a miss, replaced by the next
        put under its key, or removed by :meth:`cache_clear`)."""
        self._check_writable("purging expired entries")
        self.flush()
        now = time.time()

        def expired(value: bytes) -> bool:  # False for an entry too short to say
            if len(value) < _EXPIRY.size:
                return False
            (expiry,) = _EXPIRY.unpack_from(value)
            return bool(expiry) and expiry <= now

        def purge(txn, db) -> int:
            cursor = txn.cursor(db=db)
            doomed = [key for key, value in cursor if expired(value)]
            for key in doomed:
                txn.delete(key, db=db)
            return len(doomed)

        return self._write(b"cache", purge)

    # -- checkpoints ----------------------------------------------------------------
    #
    # checkpoints: thread key (16 bytes) + seq (8, big-endian) -> sealed record
    # writes:      thread key + seq + slot                        -> sealed entry
    # seqs/ (an environment of its own): thread key                -> last seq given out
    # All go through the writer (group commit); reads see what is committed (the
    # cache also what this process queued). A checkpoint's seq is taken inside a write
    # transaction of seqs/ (checkpoint_add): processes on one thread never share one.

    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        self._check_writable(f"writing a checkpoint of thread {thread_id!r}")
        key = thread_key(thread_id) + SEQ.pack(record["seq"])
        data = seal(self._key, record)
        self._writer(self._handle()).put(b"checkpoints", key, data, on_commit)

    def checkpoint_add(
        self,
        thread_id: str,
        make: Callable[[int], dict],
        write: bool = True,
        on_commit: OnCommit = None,
        wait: bool = False,
    ) -> dict:
        """Take the thread's next seq (:func:`~._lmdbseqs.next_seq`: at once, no commit waited
        for), build the record with it, and queue it for the writer like any put."""
        self._check_writable(f"writing a checkpoint of thread {thread_id!r}")
        prefix = thread_key(thread_id)
        record = make(next_seq(self.path, prefix, self._last_committed_seq))
        if write:
            self._put_checkpoint(prefix, record, on_commit, wait)
        elif on_commit is not None:
            on_commit(None)
        return record

    def _put_checkpoint(self, prefix: bytes, record: dict, on_commit: OnCommit, wait: bool):
        key, data = prefix + SEQ.pack(record["seq"]), seal(self._key, record)
        writer = self._writer(self._handle())
        if not wait:
            writer.put(b"checkpoints", key, data, on_commit)
            return
        outcome: list = []
        committed = threading.Event()

        def settled(error: StoreError | None) -> None:
            outcome.append(error)
            committed.set()
            if on_commit is not None:
                on_commit(error)

        if threading.current_thread() is writer._thread:
            writer.commit_now(b"checkpoints", key, data, settled)
        else:
            writer.put(b"checkpoints", key, data, settled)
        committed.wait()
        if outcome[0] is not None:
            raise outcome[0]

    def _last_committed_seq(self, prefix: bytes) -> int:
        """The seq of the thread's last committed record, or -1."""

        def last(txn, db) -> int:
            cursor = txn.cursor(db=db)
            found = cursor.prev() if cursor.set_range(prefix + _LAST_SEQ) else cursor.last()
            if found and cursor.key().startswith(prefix):
                return SEQ.unpack_from(cursor.key(), len(prefix))[0]
            return -1

        return self._read(b"checkpoints", last)

    def checkpoint_get(self, thread_id: str, seq: int | None = None) -> dict | None:
        prefix = thread_key(thread_id)

        def find(txn, db) -> bytes | None:
            if seq is not None:
                return txn.get(prefix + SEQ.pack(seq), db=db)
            cursor = txn.cursor(db=db)
            found = cursor.prev() if cursor.set_range(prefix + _LAST_SEQ) else cursor.last()
            if found and cursor.key().startswith(prefix):
                return cursor.value()
            return None

        data = self._read(b"checkpoints", find)
        return None if data is None else self._open_checkpoint(data, thread_id)

    def checkpoint_history(self, thread_id: str) -> Iterator[dict]:
        prefix = thread_key(thread_id)

        def collect(txn, db) -> list[bytes]:
            cursor = txn.cursor(db=db)
            blobs = []
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    blobs.append(value)
            return blobs

        for data in reversed(self._read(b"checkpoints", collect, [])):
            yield self._open_checkpoint(data, thread_id)

    def write_put(
        self, thread_id: str, seq: int, slot: bytes, entry: tuple, on_commit: OnCommit = None
    ) -> None:
        self._check_writable(f"writing a result of thread {thread_id!r}")
        key = thread_key(thread_id) + SEQ.pack(seq) + slot
        self._writer(self._handle()).put(b"writes", key, seal(self._key, entry), on_commit)

    def write_get(self, thread_id: str, seq: int, slot: bytes) -> Any:
        key = thread_key(thread_id) + SEQ.pack(seq) + slot
        data = self._read(b"writes", lambda txn, db: txn.get(key, db=db))
        return MISS if data is None else self._open_checkpoint(data, thread_id)

    def write_items(
        self, thread_id: str, seq: int, prefix: bytes = b""
    ) -> Iterator[tuple[bytes, tuple]]:
        prefix = thread_key(thread_id) + SEQ.pack(seq) + prefix

        def collect(txn, db) -> list[tuple[bytes, bytes]]:
            cursor = txn.cursor(db=db)
            items = []
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    items.append((key[len(prefix) :], value))
            return items

        for slot, data in self._read(b"writes", collect, []):
            yield slot, self._open_checkpoint(data, thread_id)

    def thread_delete(self, thread_id: str) -> None:
        self._check_writable(f"deleting thread {thread_id!r}")
        self.flush()
        prefix = thread_key(thread_id)

        def delete(txn, db) -> None:
            cursor = txn.cursor(db=db)
            if cursor.set_range(prefix):
                while cursor.key().startswith(prefix):
                    if not cursor.delete():
                        break

        self._write(b"checkpoints", delete)
        self._write(b"writes", delete)
        forget_seqs(self.path, prefix)  # the thread's numbering starts again

    def _read(self, name: bytes, action, empty: Any = None) -> Any:
        """``action(txn, db)`` in one read transaction, beside any write of ours (it
        never waits for a commit); ``empty`` when a read-only store has no such
        database."""
        handle = self._handle()
        db = handle.dbs.get(name)
        if db is not None:
            try:
                with handle.readers, handle.env.begin(db=db) as txn:
                    return action(txn, db)
            except lmdb.MapResizedError:
                pass  # read again below, once the map is adopted
            except lmdb.Error as exc:
                raise lmdb_failure(handle, exc) from exc
        with handle.lock:
            db = self._read_db(handle, name)
            if db is None:
                return empty

            def read() -> Any:
                with handle.readers, handle.env.begin(db=db) as txn:
                    return action(txn, db)

            return self._retrying(handle, read)

    def _open_checkpoint(self, data: bytes, thread_id: str) -> Any:
        """A checkpoint or write that does not verify or load stops the resume, with
        the reason: replaying it wrong would be worse than not replaying it."""
        try:
            return open_sealed(self._key, data)
        except UnverifiedValue as exc:
            raise StoreError(
                f"LMDB store {self.path}: a checkpoint of thread {thread_id!r} was refused "
                f"unread: {exc}. It was written with another key (PARALLELTASK_STORE_KEY or "
                "the key file) or altered; nothing of it was unpickled.",
                path=self.path,
            ) from None
        except Exception as exc:
            raise StoreError(
                f"LMDB store {self.path}: a checkpoint of thread {thread_id!r} verifies but "
                f"will not load in this Python ({type(exc).__name__}: {exc})",
                path=self.path,
            ) from exc

    def __repr__(self) -> str:
        return f"LMDBStore({self.path!r})"
