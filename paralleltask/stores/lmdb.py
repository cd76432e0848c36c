"""LMDBStore: cache entries and checkpoints in one LMDB environment on disk.

One file serves many processes at once (LMDB's own locking); a process opens each path
once (``lmdb`` refuses a second ``Environment`` on the same path in one process, and an
environment must not cross ``fork()``: a child opens its own). Named databases keep the
roles apart (``cache``, ``checkpoints``, ``writes``). The map grows when full
(``MapFullError``: double it, retry the write) and follows another process's growth
(``MapResizedError``: adopt the new size, retry).
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
import struct
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import lmdb

from ..errors import StoreError
from ._format import UnverifiedValue, load_key, open_sealed, seal
from ._lmdbopen import (
    check_data_file,
    lmdb_failure,
    lmdb_open,
    prepare_folder,
    store_path,
    writable,
)
from .base import MISS, OnCommit, Store, thread_key

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
_EXPIRY = struct.Struct("<d")  # seconds since the epoch; 0.0: never expires
_SEQ = struct.Struct(">Q")  # big-endian: a thread's checkpoints sort in order
_LAST_SEQ = _SEQ.pack(2**64 - 1)


class _Handle:
    """This process's environment for one path, its lock and its named databases."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.pid = os.getpid()
        self.env = env
        self.lock = threading.Lock()  # one transaction of ours at a time: safe resizes
        self.dbs: dict[bytes, Any] = {}
        self.writer: _Writer | None = None


_handles: dict[str, _Handle] = {}
_handles_lock = threading.Lock()


def _handle(path: str, map_size: int) -> _Handle:
    """This process's handle on ``path`` (a fresh one after ``fork()``)."""
    handle = _handles.get(path)
    if handle is not None and handle.pid == os.getpid():
        return handle
    with _handles_lock:
        handle = _handles.get(path)
        if handle is None or handle.pid != os.getpid():
            env, read_only = _open(path, map_size)
            handle = _Handle(env)
            # Race: the lookup above reads _handles without the lock, so a handle is
            # published only once whole (read_only set), never before.
            handle.read_only = read_only
            _handles[path] = handle
        return handle


def _open(path: str, map_size: int) -> tuple[lmdb.Environment, bool]:
    """The LMDB environment at ``path`` (created if there is none) and whether it is
    read-only to us; :class:`StoreError` for anything that is not a sound store of ours."""
    prepare_folder(path)
    check_data_file(path)
    read_only = not writable(path)
    env = None
    try:
        env = lmdb_open(path, map_size, read_only)
        if not read_only:
            env.reader_check()  # slots of readers that crashed
    except lmdb.Error as exc:
        if env is not None:
            env.close()  # else this process could never open the path again
        raise StoreError(
            f"{path} does not hold a usable LMDB store ({type(exc).__name__}: {exc}); "
            "it was left untouched",
            path=path,
        ) from exc
    return env, read_only


class _Writer:
    """One thread per environment that commits queued puts in batches (group commit):
    one fsync'd transaction for every put that queued up meanwhile, off the threads
    that deliver results. ``flush()`` waits until what was queued is committed."""

    def __init__(self, store: LMDBStore) -> None:
        self._store = store
        self._queue: list[tuple[bytes, bytes, bytes, OnCommit]] = []
        self._changed = threading.Condition()
        self._writing = False
        self._thread = threading.Thread(target=self._serve, name="paralleltask-lmdb", daemon=True)
        self._thread.start()

    def put(self, name: bytes, key: bytes, data: bytes, on_commit: OnCommit = None) -> None:
        with self._changed:
            self._queue.append((name, key, data, on_commit))
            self._changed.notify_all()

    def flush(self) -> None:
        with self._changed:
            while self._queue or self._writing:
                self._changed.wait()

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                batch, self._queue = self._queue, []
                self._writing = True
            try:
                self._store._write_batch(batch)
            except Exception as exc:
                warnings.warn(
                    f"LMDB store {self._store.path}: {len(batch)} entries were not "
                    f"written: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=1,
                )
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()
            for *_, on_commit in batch:  # e.g. resolve futures under durability="sync"
                if on_commit is not None:
                    on_commit()


def _get(env: lmdb.Environment, db: Any, key: bytes) -> bytes | None:
    with env.begin(db=db) as txn:
        return txn.get(key)


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

    def _read_db(self, handle: _Handle, name: bytes) -> Any:
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

    def _handle(self) -> _Handle:
        return _handle(self.path, self.map_size)

    def _db(self, handle: _Handle, name: bytes) -> Any:
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
    def _retrying(handle: _Handle, operation) -> Any:
        # The caller holds handle.lock, so no transaction of ours is open: resizing the
        # map is safe (LMDB requires it).
        while True:
            try:
                try:
                    return operation()
                except lmdb.MapResizedError:
                    handle.env.set_mapsize(0)  # adopt the size another process grew it to
                except lmdb.MapFullError:
                    handle.env.set_mapsize(handle.env.info()["map_size"] * 2)
            except lmdb.Error as exc:  # damaged pages, a read-only store, a failed
                raise lmdb_failure(handle, exc) from exc  # resize...: one type, the path

    # -- the cache --------------------------------------------------------------------

    def cache_get(self, key: bytes) -> Any:
        handle = self._handle()
        with handle.lock:
            db = handle.dbs.get(b"cache") or self._read_db(handle, b"cache")
            if db is None:  # a read-only store with no cache in it
                return MISS
            try:  # the hot path of a hit: one read transaction, no closures
                with handle.env.begin(db=db) as txn:
                    data = txn.get(key)
            except lmdb.MapResizedError:
                data = self._retrying(handle, lambda: _get(handle.env, db, key))
            except lmdb.Error as exc:
                raise lmdb_failure(handle, exc) from exc
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
        self, key: bytes, value: Any, ttl: float | None, pickled: bytes | None = None
    ) -> None:
        """Queue the entry for the writer thread (see :meth:`flush`)."""
        expiry = time.time() + ttl if ttl else 0.0
        data = _EXPIRY.pack(expiry) + seal(self._key, value, pickled)
        handle = self._handle()
        self._writer(handle).put(b"cache", key, data)

    def _writer(self, handle: _Handle) -> _Writer:
        if handle.writer is None:
            with handle.lock:
                if handle.writer is None:
                    handle.writer = _Writer(self)
        return handle.writer

    def flush(self) -> None:
        """Wait until every queued put is committed (the end of each run calls it)."""
        writer = self._handle().writer
        if writer is not None:
            writer.flush()

    def _write_batch(self, batch: list[tuple[bytes, bytes, bytes, OnCommit]]) -> None:
        handle = self._handle()
        with handle.lock:
            dbs = {name: self._db(handle, name) for name in {item[0] for item in batch}}

            def write() -> None:
                with handle.env.begin(write=True) as txn:
                    for name, key, data, _ in batch:
                        txn.put(key, data, db=dbs[name])

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
    # Both go through the writer (group commit); reads see what is committed.

    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        key = thread_key(thread_id) + _SEQ.pack(record["seq"])
        data = seal(self._key, record)
        self._writer(self._handle()).put(b"checkpoints", key, data, on_commit)

    def checkpoint_get(self, thread_id: str, seq: int | None = None) -> dict | None:
        prefix = thread_key(thread_id)

        def find(txn, db) -> bytes | None:
            if seq is not None:
                return txn.get(prefix + _SEQ.pack(seq), db=db)
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
        key = thread_key(thread_id) + _SEQ.pack(seq) + slot
        self._writer(self._handle()).put(b"writes", key, seal(self._key, entry), on_commit)

    def write_get(self, thread_id: str, seq: int, slot: bytes) -> Any:
        key = thread_key(thread_id) + _SEQ.pack(seq) + slot
        data = self._read(b"writes", lambda txn, db: txn.get(key, db=db))
        return MISS if data is None else self._open_checkpoint(data, thread_id)

    def write_items(
        self, thread_id: str, seq: int, prefix: bytes = b""
    ) -> Iterator[tuple[bytes, tuple]]:
        prefix = thread_key(thread_id) + _SEQ.pack(seq) + prefix

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

    def _read(self, name: bytes, action, empty: Any = None) -> Any:
        """``action(txn, db)`` in one read transaction; ``empty`` when a read-only
        store has no such database."""
        handle = self._handle()
        with handle.lock:
            db = self._read_db(handle, name)
            if db is None:
                return empty

            def read() -> Any:
                with handle.env.begin(db=db) as txn:
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
