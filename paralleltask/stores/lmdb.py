"""LMDBStore: cache entries and checkpoints in one LMDB environment on disk.

One file serves many processes at once (LMDB's own locking); a process opens each path
once (``lmdb`` refuses a second ``Environment`` on the same path in one process, and an
environment must not cross ``fork()``: a child opens its own). Named databases keep the
roles apart (``cache``, ``checkpoints``, ``writes``); a small second environment,
``seqs-<boot id>/``, numbers each thread's checkpoints across processes (see
:func:`_next_seq`). The map grows when full (``MapFullError``: double it, retry the
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
import shutil
import struct
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lmdb

from .. import serde
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
from .base import MISS, OnCommit, Store, commit_error, thread_key

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


#: path -> the cache entries this process's writer has queued and not yet committed
#: (the writer's own dict). Emptied in a forked child: its parent's writer commits them,
#: and the child's lookups read the database until the child has a writer of its own.
_pending_entries: dict[str, dict[bytes, tuple[float, bytes, bytes]]] = {}
os.register_at_fork(after_in_child=_pending_entries.clear)


class _Writer:
    """One thread per environment that commits queued puts in batches (group commit):
    one fsync'd transaction for every put that queued up meanwhile, off the threads
    that deliver results. ``flush()`` waits until what was queued is committed and its
    ``on_commit`` callbacks have run (a failed put's run has learnt of it by then).

    ``cached`` holds the cache entries queued and not yet committed (key -> expiry,
    pickle, sealed bytes), so that a lookup in this process sees its own puts at once.
    """

    def __init__(self, store: LMDBStore) -> None:
        self._store = store
        self._queue: list[tuple[bytes, bytes, Any, OnCommit]] = []
        self._changed = threading.Condition()
        self._writing = False
        self.cached: dict[bytes, tuple[float, bytes, bytes]] = {}
        _pending_entries[store.path] = self.cached
        self._thread = threading.Thread(target=self._serve, name="paralleltask-lmdb", daemon=True)
        self._thread.start()

    def put(self, name: bytes, key: bytes, data: Any, on_commit: OnCommit = None) -> None:
        with self._changed:
            self._queue.append((name, key, data, on_commit))
            self._changed.notify_all()

    def put_cache(
        self, key: bytes, data: bytes, expiry: float, blob: bytes, on_commit: OnCommit
    ) -> None:
        with self._changed:
            # Visible at once: until the commit a lookup finds it in `cached`, after it
            # in the database (it leaves `cached` only once committed: no window in
            # which it is in neither).
            self.cached[key] = (expiry, blob, data)
            self._queue.append((b"cache", key, data, on_commit))
            self._changed.notify_all()

    def commit_now(self, name: bytes, key: bytes, data: bytes, on_commit: OnCommit) -> None:
        """Commit one put in the calling thread, the writer's own (a put that must be
        waited for, asked by an on_commit callback: the writer cannot wait for itself)."""
        item = (name, key, data, on_commit)
        self._settle([item], self._commit([item]))

    def flush(self) -> None:
        if threading.current_thread() is self._thread:
            return  # an on_commit callback that flushes: waiting on ourselves never ends
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
                try:
                    errors = self._commit(batch)
                except BaseException as exc:  # a bug of ours: the puts still hear of it
                    traceback.print_exc()
                    errors = [commit_error(self._store.path, len(batch), exc)] * len(batch)
                self._forget_cached(batch)
                self._settle(batch, errors)
            finally:  # whatever happened, the writer serves the next batch
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()

    def _commit(self, batch: list) -> list[StoreError | None]:
        """Commit ``batch`` in one transaction; if that fails, each put alone, so that
        one put that cannot be stored (too large for what is left of the disk) does not
        take other puts, maybe other runs', with it. The error of each put, or None."""
        store = self._store
        try:
            store._write_batch(batch)
            return [None] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [commit_error(store.path, 1, exc)]
        errors: list[StoreError | None] = []
        for item in batch:
            try:
                store._write_batch([item])
                errors.append(None)
            except Exception as exc:
                errors.append(commit_error(store.path, 1, exc))
        return errors

    def _forget_cached(self, batch: list) -> None:
        # Committed (or failed): a lookup now reads the database. An entry queued again
        # meanwhile (a newer value under the same key) stays until its own commit.
        cached = self.cached
        with self._changed:
            for name, key, data, _ in batch:
                entry = cached.get(key) if name == b"cache" else None
                if entry is not None and entry[2] is data:
                    del cached[key]

    @staticmethod
    def _settle(batch: list, errors: list) -> None:
        """Tell each put how its commit went (e.g. resolve futures under "sync"), before
        ``flush()`` returns; a callback that raises is reported, the others still run."""
        for (name, _, _, on_commit), error in zip(batch, errors, strict=True):
            try:
                if on_commit is not None:
                    on_commit(error)
                elif error is not None:  # nobody to tell (a put made through the API)
                    warnings.warn(f"{error} ({name.decode()})", RuntimeWarning, stacklevel=1)
            except BaseException:
                traceback.print_exc()


def _get(env: lmdb.Environment, db: Any, key: bytes) -> bytes | None:
    with env.begin(db=db) as txn:
        return txn.get(key)


# -- checkpoint numbering across processes ---------------------------------------------
#
# Two processes running on one thread must never give two records the same seq (nor key
# their writes by it). The seq is taken inside a write transaction of `seqs-<boot id>/`, a small
# LMDB environment of its own: LMDB lets one process write at a time, so a seq is given
# once. Its counters matter only while the processes that took them live, so it is
# opened without fsync (a take costs ~10 µs, not a commit's fsync) and named after the
# machine's boot (`seqs-<boot id>`): a process that crashes leaves its writes in the OS,
# and an OS crash (which could leave an unsynced LMDB file torn) starts a new boot, a
# new counter folder. A take also looks past the thread's last committed record (so a
# fresh counter folder, or a store written before it existed, never gives out a seq a
# record has). Where the boot cannot be told (no /proc), `seqs/` is fsync'd instead.

_SEQ_MAP_SIZE = 1 << 20
_seq_envs: dict[str, tuple[int, lmdb.Environment, threading.Lock]] = {}


def _seq_env(path: str) -> tuple[lmdb.Environment, threading.Lock]:
    """This process's ``seqs/`` environment of the store at ``path`` (anew after fork)."""
    entry = _seq_envs.get(path)
    if entry is None or entry[0] != os.getpid():
        with _handles_lock:
            entry = _seq_envs.get(path)
            if entry is None or entry[0] != os.getpid():
                boot = _boot_id()
                folder = os.path.join(path, f"seqs-{boot}" if boot else "seqs")
                if boot:
                    _drop_older_boots(path, folder)
                env = lmdb.open(
                    folder,
                    map_size=_SEQ_MAP_SIZE,
                    subdir=True,
                    mode=0o600,
                    sync=not boot,  # see above: a new boot, a new folder
                    metasync=not boot,
                    # not writemap (half the cost of a take): on a full disk a page
                    # the map cannot get is a SIGBUS, not an error
                    readahead=False,
                    max_readers=512,
                )
                entry = _seq_envs[path] = (os.getpid(), env, threading.Lock())
    return entry[1], entry[2]


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip().replace("-", "") or None
    except OSError:
        return None


def _drop_older_boots(path: str, keep: str) -> None:
    """Counter folders of earlier boots: no process that took from them lives."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        folder = os.path.join(path, name)
        if name.startswith("seqs-") and folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


def _seq_transaction(path: str, action) -> Any:
    """``action(txn)`` in a write transaction of ``seqs/``, growing its map when full."""
    env, lock = _seq_env(path)
    with lock:  # our transactions one at a time: resizing the map is safe
        while True:
            try:
                with env.begin(write=True) as txn:
                    return action(txn)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)


def _next_seq(store: LMDBStore, prefix: bytes) -> int:
    """The next seq of the thread ``prefix``: past the last one given out (by any
    process, this boot), or else past its last committed record; taken inside one
    write transaction of ``seqs-<boot>/``."""

    def take(txn: Any) -> int:
        given = txn.get(prefix)
        if given is not None:  # every record since this boot has a seq it gave out
            seq = _SEQ.unpack(given)[0] + 1
        else:  # a thread new to this boot's counters: past its records, if it has any
            seq = store._last_committed_seq(prefix) + 1  # (waits for a commit under way)
        txn.put(prefix, _SEQ.pack(seq))
        return seq

    try:
        return _seq_transaction(store.path, take)
    except lmdb.Error as exc:
        raise commit_error(store.path, 1, exc) from exc


def _forget_seqs(store: LMDBStore, prefix: bytes) -> None:
    _seq_transaction(store.path, lambda txn: txn.delete(prefix))


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
        if _pending_entries.get(self.path):  # this process's puts, not yet committed
            pending = self._pending_cache(key)
            if pending is not MISS:
                return pending
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
        self,
        key: bytes,
        value: Any,
        ttl: float | None,
        pickled: bytes | None = None,
        on_commit: OnCommit = None,
    ) -> None:
        """Queue the entry for the writer thread (see :meth:`flush`); this process's
        lookups see it at once (:meth:`_pending_cache`)."""
        self._check_writable("caching a value")
        expiry = time.time() + ttl if ttl else 0.0
        blob = serde.dumps(value) if pickled is None else pickled
        data = _EXPIRY.pack(expiry) + seal(self._key, value, blob)
        self._writer(self._handle()).put_cache(key, data, expiry, blob, on_commit)

    def _pending_cache(self, key: bytes) -> Any:
        """The value of a cache entry this process queued and the writer has not
        committed yet, or MISS: so a call cached twice in a row runs once, as with
        MemoryStore and LangGraph. One dict lookup when nothing is pending."""
        cached = _pending_entries.get(self.path)  # no getpid() on the hit path: see there
        if cached is None:
            return MISS
        entry = cached.get(key)  # a dict read is atomic; no lock on the hit path
        if entry is None or (entry[0] and entry[0] <= time.time()):
            return MISS
        return pickle.loads(entry[1])  # a copy, as a committed entry's read is

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
        """Commit ``batch`` in one write transaction (the map grows if full)."""
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
    # seqs/ (an environment of its own): thread key                -> last seq given out
    # All go through the writer (group commit); reads see what is committed (the
    # cache also what this process queued). A checkpoint's seq is taken inside a write
    # transaction of seqs/ (checkpoint_add): processes on one thread never share one.

    def checkpoint_put(self, thread_id: str, record: dict, on_commit: OnCommit = None) -> None:
        self._check_writable(f"writing a checkpoint of thread {thread_id!r}")
        key = thread_key(thread_id) + _SEQ.pack(record["seq"])
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
        """Take the thread's next seq (:func:`_next_seq`: at once, no commit waited
        for), build the record with it, and queue it for the writer like any put."""
        self._check_writable(f"writing a checkpoint of thread {thread_id!r}")
        prefix = thread_key(thread_id)
        record = make(_next_seq(self, prefix))
        if write:
            self._put_checkpoint(prefix, record, on_commit, wait)
        elif on_commit is not None:
            on_commit(None)
        return record

    def _put_checkpoint(self, prefix: bytes, record: dict, on_commit: OnCommit, wait: bool):
        key, data = prefix + _SEQ.pack(record["seq"]), seal(self._key, record)
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
                return _SEQ.unpack_from(cursor.key(), len(prefix))[0]
            return -1

        return self._read(b"checkpoints", last)

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
        self._check_writable(f"writing a result of thread {thread_id!r}")
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
        _forget_seqs(self, prefix)  # the thread's numbering starts again

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
