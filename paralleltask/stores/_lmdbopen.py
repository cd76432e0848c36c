"""How an LMDBStore folder is opened (one handle per path per process): what is refused
before LMDB sees it, and how a store that is not writable by us is opened for reading.

Refused, each with a :class:`~paralleltask.errors.StoreError` naming the path and what
to do, the folder and its files left untouched: a path that is a file; a folder owned by
another user or writable by the group or others; a ``data.mdb`` that is empty or cut
short (``_lmdbfile.py``); one LMDB will not open. A brand-new folder is a fresh store.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import threading
import time
import warnings
from typing import Any

import lmdb

from ..errors import StoreError
from ._lmdbfile import data_file_problem
from ._lmdbwriter import Writer


def store_path(path: Any) -> str:
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


def prepare_folder(path: str) -> None:
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
    makes exactly such a folder. A folder root owns is accepted, as ssh accepts
    root-owned paths: root can replace anything of ours anyway, and a store baked into
    an image (root's, read-only to the user who runs it) is then readable."""
    if st.st_uid not in (os.geteuid(), 0):
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


def check_data_file(path: str) -> None:
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


def writable(path: str) -> bool:
    """Whether we may write the store: its folder and the files already in it."""
    ids = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    names = [path] + [os.path.join(path, n) for n in ("data.mdb", "lock.mdb")]
    return all(os.access(n, os.W_OK, **ids) for n in names if os.path.exists(n))


def lmdb_open(path: str, map_size: int, read_only: bool) -> lmdb.Environment:
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


def lmdb_failure(handle: Any, exc: lmdb.Error) -> StoreError:
    """The error a user sees for an LMDB error: one type, naming the store."""
    path = handle.env.path()
    if isinstance(exc, lmdb.ReadonlyError):  # a write in a store opened read-only
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


# -- this process's handle on each store ----------------------------------------------


class ReadersLock:
    """Held, shared, by every read transaction of this process; taken alone to resize
    the map (LMDB: no transaction of the process may be open while ``set_mapsize``
    runs). Reads never wait for a write's commit (its fsync: ~0.4 ms here), only for a
    resize, which is rare."""

    __slots__ = ("_changed", "_readers", "_resizing")

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False

    def __enter__(self) -> None:
        with self._changed:
            while self._resizing:
                self._changed.wait()
            self._readers += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._readers -= 1
            if not self._readers and self._resizing:
                self._changed.notify_all()

    def resize(self, env: lmdb.Environment, size: int) -> None:
        """``env.set_mapsize(size)`` once no read is open; new reads wait for it. The
        caller holds the handle's ``lock`` (so no write of ours is open either, and no
        other resize), and no read."""
        with self._changed:
            self._resizing = True
            while self._readers:
                self._changed.wait()
        try:
            env.set_mapsize(size)
        finally:
            with self._changed:
                self._resizing = False
                self._changed.notify_all()


class Handle:
    """This process's environment for one path, its locks and its named databases."""

    def __init__(self, env: lmdb.Environment, read_only: bool) -> None:
        self.pid = os.getpid()
        self.env = env
        # Writes, opening a database and resizes: one at a time (``lock``); reads share
        # ``readers`` and run beside a write, as LMDB allows (its readers never block).
        self.lock = threading.Lock()
        self.readers = ReadersLock()
        self.dbs: dict[bytes, Any] = {}
        self.writer: Writer | None = None  # started by the first put
        self.read_only = read_only


_handles: dict[str, Handle] = {}
_handles_lock = threading.Lock()


def close_inherited(envs: list[lmdb.Environment]) -> None:
    """In a forked child: close the environments inherited from the parent, before the
    child opens its own (py-lmdb refuses a second open of one file in a process, and
    LMDB forbids using an environment across ``fork()``). Safe for the parent: LMDB's
    close clears only reader slots of the closing pid, and fcntl locks are the parent's
    alone (a child inherits none)."""
    for env in envs:
        try:
            env.close()
        except Exception:  # pragma: no cover - nothing the child can do about it
            pass


def _forget_after_fork() -> None:
    close_inherited([handle.env for handle in _handles.values()])
    _handles.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def handle_of(path: str, map_size: int) -> Handle:
    """This process's handle on ``path`` (a fresh one after ``fork()``)."""
    handle = _handles.get(path)
    if handle is not None and handle.pid == os.getpid():
        return handle
    with _handles_lock:
        handle = _handles.get(path)
        if handle is None or handle.pid != os.getpid():
            env, read_only = _open(path, map_size)
            # Race: the lookup above reads _handles without the lock, so a handle is
            # published only once whole (read_only set), never before.
            handle = _handles[path] = Handle(env, read_only)
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


_warned_read_only: set[str] = set()


def warn_read_only_cache(path: str) -> None:
    """A read-only store (one baked into an image, say) still answers hits; what it
    cannot keep is new entries: say so once per store, and compute the misses."""
    if path not in _warned_read_only:
        _warned_read_only.add(path)
        warnings.warn(
            f"LMDB store {path} is read-only: its cache entries are read, new ones are "
            "not kept (checkpoint writes to it are refused with StoreError)",
            RuntimeWarning,
            stacklevel=3,
        )
