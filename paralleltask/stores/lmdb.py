"""LMDBStore: cache entries and checkpoints in one LMDB environment on disk.

One file serves many processes at once (LMDB's own locking); a process opens each path
once (``lmdb`` refuses a second ``Environment`` on the same path in one process, and an
environment must not cross ``fork()``: a child opens its own). Named databases keep the
roles apart (``cache``, ``checkpoints``, ``writes``). The map grows when full
(``MapFullError``: double it, retry the write) and follows another process's growth
(``MapResizedError``: adopt the new size, retry).
Stale reader slots left by crashed processes are cleared on open (``reader_check``).

What the store refuses (a :class:`~paralleltask.errors.StoreError` naming the path,
the folder and its files left untouched): a folder that another user owns or that
others may write; a data file that is empty or shorter than its own header says
(``_lmdbfile.py``: reading it would be SIGBUS); one LMDB will not open. Any LMDB error
later is a ``StoreError`` too (the LMDB error as its ``__cause__``). A store that is
not writable by us opens read-only: reads work, writes are refused.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import lmdb

from ..errors import StoreError
from ._format import UnverifiedValue, load_key, open_sealed, seal
from ._lmdbfile import data_file_problem
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
            handle = _handles[path] = _Handle(env)
            handle.read_only = read_only
        return handle


def _open(path: str, map_size: int) -> tuple[lmdb.Environment, bool]:
    """The LMDB environment at ``path`` (created if there is none) and whether it is
    read-only to us; :class:`StoreError` for anything that is not a sound store of ours."""
    _prepare_folder(path)
    _check_data_file(path)
    read_only = not _writable(path)
    try:
        env = _lmdb_open(path, map_size, read_only)
    except lmdb.Error as exc:
        raise StoreError(
            f"{path} does not hold a usable LMDB store ({type(exc).__name__}: {exc}); "
            "it was left untouched",
            path=path,
        ) from exc
    if not read_only:
        env.reader_check()  # slots of readers that crashed
    return env, read_only


def _prepare_folder(path: str) -> None:
    """Create the store folder owner-only if it is missing; refuse a file, or a folder
    that is not safe to load pickles from."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(
            f"{path} is a file, not an LMDBStore folder; it was left untouched", path=path
        )
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the LMDBStore folder {path} ({exc.strerror or exc})", path=path
        ) from exc
    _check_folder(path, os.stat(path))


def _check_folder(path: str, st: os.stat_result) -> None:
    """Refuse a store folder that another user owns or that others may write: whoever
    can replace its files can swap the store under us (its values are signed, but a
    swapped or cut file can still crash or mislead the process reading it). A folder
    that others may only *read* is accepted: LMDB creates the files in it owner-only
    (0600), so they see names, not values, and ``mkdir`` under the usual umask 022
    makes exactly such a folder."""
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"the LMDBStore folder {path} is owned by uid {st.st_uid}, not by you (uid "
            f"{os.geteuid()}): its owner could replace the store under you. Use a folder "
            f"of your own, or take it over (chown -R {os.geteuid()} {path}) if you trust "
            "its owner.",
            path=path,
        )
    if st.st_mode & 0o022:
        raise StoreError(
            f"the LMDBStore folder {path} can be written by the group or others (mode "
            f"{st.st_mode & 0o777:04o}): they could replace the store under you. Make it "
            f"yours alone: chmod 700 {path}",
            path=path,
        )


def _check_data_file(path: str) -> None:
    """Refuse a data file that LMDB would take for a new store (0 bytes: it would start
    over, silently) or that is shorter than its meta page says (reading the missing
    pages is SIGBUS, not an error). A folder with no data file is a new store."""
    data = os.path.join(path, "data.mdb")
    waited = False
    while True:
        try:
            problem = data_file_problem(data)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"LMDB store {path}: cannot read {data} ({exc.strerror or exc})", path=path
            ) from exc
        if problem is None:
            return
        # Race: a process creating this store holds LMDB's exclusive lock from creating
        # data.mdb (0 bytes) until it has written the header. Wait for it to finish
        # rather than take its new store for an emptied one.
        if problem.startswith("is empty") and not waited and _wait_for_creator(path):
            waited = True
            continue
        raise StoreError(
            f"LMDB store {path}: its data file {data} {problem}. It was left "
            "untouched: restore it from a copy, or move the folder away to start a "
            "new store.",
            path=path,
        )


_FLOCK = "@hhqqi0q"  # Linux's struct flock: type, whence, start, len, pid (64-bit off_t)


def _wait_for_creator(path: str, patience: float = 60.0) -> bool:
    """Whether a process held the store's creation lock (LMDB's exclusive lock on byte
    0 of ``lock.mdb``), waited out. Asked with F_GETLK, which takes no lock: taking
    even a shared one could make a creator that starts meanwhile skip initializing.
    Where F_GETLK's struct is not known (not Linux): a short pause, then one more look."""
    if not sys.platform.startswith("linux"):
        time.sleep(0.5)
        return True
    lock_file = os.path.join(path, "lock.mdb")
    waited = False
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if not _creation_lock_held(lock_file):
            return waited
        waited = True
        time.sleep(0.01)
    return False


def _creation_lock_held(lock_file: str) -> bool:
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        # Closing this descriptor drops every fcntl lock this *process* holds on the
        # file: safe here, since this process has no environment open on it yet.
        query = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 0, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK
    except OSError:
        return False
    finally:
        os.close(fd)


def _writable(path: str) -> bool:
    """Whether we may write the store: its folder and the files already in it."""
    ids = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    names = [path] + [os.path.join(path, n) for n in ("data.mdb", "lock.mdb")]
    return all(os.access(n, os.W_OK, **ids) for n in names if os.path.exists(n))


def _lmdb_open(path: str, map_size: int, read_only: bool) -> lmdb.Environment:
    options = dict(
        map_size=map_size, subdir=True, max_dbs=8, mode=0o600, readahead=False, max_readers=512
    )
    if not read_only:
        return lmdb.open(path, **options)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        raise StoreError(
            f"LMDB store {path} is read-only (not writable by you) and holds no store yet: "
            "there is nothing to read, and no store can be created there.",
            path=path,
        )
    try:
        return lmdb.open(path, readonly=True, **options)
    except lmdb.Error:
        # lock.mdb is not writable by us either: read without LMDB's reader table. Race:
        # a writer (the owner) is then free to reuse pages while we read them; such a
        # read sees other bytes, which the value checks turn into a miss or a
        # StoreError, never a wrong value (values are signed).
        return lmdb.open(path, readonly=True, lock=False, **options)


def _lmdb_failure(handle: _Handle, exc: lmdb.Error) -> StoreError:
    """The error a user sees for an LMDB error: one type, naming the store."""
    path = handle.env.path()
    if getattr(handle, "read_only", False) or isinstance(exc, lmdb.ReadonlyError):
        return StoreError(
            f"LMDB store {path} is read-only (its folder or files are not writable by "
            f"you): it can be read, not written ({type(exc).__name__}: {exc})",
            path=path,
        )
    return StoreError(
        f"LMDB store {path}: {type(exc).__name__}: {exc} (a damaged or foreign data "
        "file? it was left untouched)",
        path=path,
    )


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


def _store_path(path: Any) -> str:
    """``path`` as the absolute, resolved folder name: ``str`` or ``os.PathLike``, ``~``
    expanded; an empty or non-string path is refused (not taken as the current folder)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"LMDBStore path must be a str or os.PathLike naming a folder, got "
            f"{type(path).__name__}: {path!r}"
        )
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"LMDBStore path must be a str, got {type(text).__name__}: {text!r}")
    if not text:
        raise ValueError("LMDBStore path is empty: name a folder, e.g. LMDBStore('~/.cache/myjob')")
    return os.path.realpath(os.path.expanduser(text))


def _expired(value: bytes, now: float) -> bool:
    """Whether a cache entry's time is up (``False`` for one too short to say)."""
    if len(value) < _EXPIRY.size:
        return False
    (expiry,) = _EXPIRY.unpack_from(value)
    return bool(expiry) and expiry <= now


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
        self.path = _store_path(path)
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
                return operation()
            except lmdb.MapResizedError:
                handle.env.set_mapsize(0)  # adopt the size another process grew it to
            except lmdb.MapFullError:
                handle.env.set_mapsize(handle.env.info()["map_size"] * 2)
            except lmdb.Error as exc:  # damaged pages, a read-only store, ...: one type
                raise _lmdb_failure(handle, exc) from exc

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
                raise _lmdb_failure(handle, exc) from exc
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

        def purge(txn, db) -> int:
            cursor = txn.cursor(db=db)
            doomed = [key for key, value in cursor if _expired(value, now)]
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
