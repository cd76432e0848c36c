"""Checkpoint numbering across processes.

Two processes running on one thread must never give two records the same seq (nor key
their writes by it). The seq is taken inside a write transaction of ``seqs-<boot id>/``,
a small LMDB environment of its own: LMDB lets one process write at a time, so a seq is
given once. Its counters matter only while the processes that took them live, so it is
opened without fsync (a take costs ~10 µs, not a commit's fsync) and named after the
machine's boot (`seqs-<boot id>`): a process that crashes leaves its writes in the OS,
and an OS crash (which could leave an unsynced LMDB file torn) starts a new boot, a
new counter folder. A take also looks past the thread's last committed record (so a
fresh counter folder, or a store written before it existed, never gives out a seq a
record has). Where the boot cannot be told (no /proc), `seqs/` is fsync'd instead.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Callable
from typing import Any

import lmdb

from ..errors import StoreError
from ._lmdbopen import close_inherited

SEQ = struct.Struct(">Q")  # big-endian: a thread's checkpoints sort in order

_SEQ_MAP_SIZE = 1 << 20
_seq_envs: dict[str, tuple[int, lmdb.Environment, threading.Lock]] = {}
_seq_envs_lock = threading.Lock()


def _forget_after_fork() -> None:
    close_inherited([entry[1] for entry in _seq_envs.values()])
    _seq_envs.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _seq_env(path: str) -> tuple[lmdb.Environment, threading.Lock]:
    """This process's ``seqs/`` environment of the store at ``path`` (anew after fork)."""
    entry = _seq_envs.get(path)
    if entry is None or entry[0] != os.getpid():
        with _seq_envs_lock:
            entry = _seq_envs.get(path)
            if entry is None or entry[0] != os.getpid():
                boot = _boot_id()
                folder = os.path.join(path, f"seqs-{boot}" if boot else "seqs")
                if boot:
                    _drop_older_boots(path, folder)
                _make_folder(folder)
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


def _make_folder(folder: str) -> None:
    """The counters' folder, owner-only and searchable: ``lmdb.open`` would make it with
    the files' mode (0600), which no one but root can enter."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    status = os.stat(folder)
    if status.st_uid == os.geteuid() and status.st_mode & 0o700 != 0o700:
        os.chmod(folder, 0o700)  # made 0600 by an earlier version: ours, so mend it


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


def next_seq(path: str, prefix: bytes, last_committed: Callable[[bytes], int]) -> int:
    """The next seq of the thread ``prefix``: past the last one given out (by any
    process, this boot), or else past its last committed record; taken inside one
    write transaction of ``seqs-<boot>/``. ``last_committed(prefix)``: the seq of the
    thread's last committed record, or -1."""

    def take(txn: Any) -> int:
        given = txn.get(prefix)
        # Past both the last seq given out this boot and the thread's last committed
        # record (waiting for a commit under way): a record put without the counter
        # (checkpoint_put, a data.mdb restored from a copy, an older paralleltask) must
        # never be overwritten by a later one.
        last = last_committed(prefix)
        if given is not None:
            last = max(last, SEQ.unpack(given)[0])
        seq = last + 1
        txn.put(prefix, SEQ.pack(seq))
        return seq

    return _counting(path, "numbering a checkpoint", lambda: _seq_transaction(path, take))


def forget_seqs(path: str, prefix: bytes) -> None:
    """The thread was deleted: its numbering starts again (past what it has left)."""
    _counting(
        path,
        "forgetting a thread's numbering",
        lambda: _seq_transaction(path, lambda txn: txn.delete(prefix)),
    )


def _counting(path: str, doing: str, action: Callable[[], Any]) -> Any:
    """``action()``; an LMDB or OS error of the counters as a StoreError naming them."""
    try:
        return action()
    except (lmdb.Error, OSError) as exc:
        raise StoreError(
            f"LMDB store {path}: {doing} failed in its counters folder (seqs-*): "
            f"{type(exc).__name__}: {exc}",
            path=path,
        ) from exc
