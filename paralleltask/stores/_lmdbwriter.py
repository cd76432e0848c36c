"""The writer of an LMDB store: one thread per environment that commits queued puts in
batches (group commit), tells each put how its commit went, and keeps the cache entries
not yet committed where this process's lookups see them at once.
"""

from __future__ import annotations

import os
import threading
import traceback
import warnings
from typing import Any, NamedTuple, Protocol

from ..errors import StoreError
from .base import OnCommit, commit_error


class QueuedPut(NamedTuple):
    """One put waiting for the writer: ``data`` to store under ``key`` in the named
    database ``name``; ``on_commit`` hears how its commit went."""

    name: bytes
    key: bytes
    data: Any
    on_commit: OnCommit


class PendingEntry(NamedTuple):
    """A cache entry queued and not yet committed: when it expires (0.0: never), its
    value pickled (what a lookup loads), and the sealed bytes queued (its put's data)."""

    expiry: float
    blob: bytes
    data: bytes


class _Committer(Protocol):
    """What the writer needs of its store: where it is, and one batch committed."""

    path: str

    def _write_batch(self, batch: list[QueuedPut]) -> None: ...


#: path -> the cache entries this process's writer has queued and not yet committed
#: (the writer's own dict). Emptied in a forked child: its parent's writer commits them,
#: and the child's lookups read the database until the child has a writer of its own.
pending_entries: dict[str, dict[bytes, PendingEntry]] = {}
os.register_at_fork(after_in_child=pending_entries.clear)


class Writer:
    """One thread per environment that commits queued puts in batches (group commit):
    one fsync'd transaction for every put that queued up meanwhile, off the threads
    that deliver results. ``flush()`` waits until what was queued is committed and its
    ``on_commit`` callbacks have run (a failed put's run has learnt of it by then).

    ``cached`` holds the cache entries queued and not yet committed (key ->
    :class:`PendingEntry`), so that a lookup in this process sees its own puts at once.
    """

    def __init__(self, store: _Committer) -> None:
        self._store = store
        self._queue: list[QueuedPut] = []
        self._changed = threading.Condition()
        self._writing = False
        self.cached: dict[bytes, PendingEntry] = {}
        pending_entries[store.path] = self.cached
        self._thread = threading.Thread(target=self._serve, name="paralleltask-lmdb", daemon=True)
        self._thread.start()

    def put(self, name: bytes, key: bytes, data: Any, on_commit: OnCommit = None) -> None:
        with self._changed:
            self._queue.append(QueuedPut(name, key, data, on_commit))
            self._changed.notify_all()

    def put_cache(
        self, key: bytes, data: bytes, expiry: float, blob: bytes, on_commit: OnCommit
    ) -> None:
        with self._changed:
            # Visible at once: until the commit a lookup finds it in `cached`, after it
            # in the database (it leaves `cached` only once committed: no window in
            # which it is in neither).
            self.cached[key] = PendingEntry(expiry, blob, data)
            self._queue.append(QueuedPut(b"cache", key, data, on_commit))
            self._changed.notify_all()

    def commit_now(self, name: bytes, key: bytes, data: bytes, on_commit: OnCommit) -> None:
        """Commit one put in the calling thread, the writer's own (a put that must be
        waited for, asked by an on_commit callback: the writer cannot wait for itself)."""
        item = QueuedPut(name, key, data, on_commit)
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

    def _commit(self, batch: list[QueuedPut]) -> list[StoreError | None]:
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

    def _forget_cached(self, batch: list[QueuedPut]) -> None:
        # Committed (or failed): a lookup now reads the database. An entry queued again
        # meanwhile (a newer value under the same key) stays until its own commit.
        cached = self.cached
        with self._changed:
            for put in batch:
                entry = cached.get(put.key) if put.name == b"cache" else None
                if entry is not None and entry.data is put.data:
                    del cached[put.key]

    @staticmethod
    def _settle(batch: list[QueuedPut], errors: list) -> None:
        """Tell each put how its commit went (e.g. resolve futures under "sync"), before
        ``flush()`` returns; a callback that raises is reported, the others still run."""
        for put, error in zip(batch, errors, strict=True):
            try:
                if put.on_commit is not None:
                    put.on_commit(error)
                elif error is not None:  # nobody to tell (a put made through the API)
                    warnings.warn(f"{error} ({put.name.decode()})", RuntimeWarning, stacklevel=1)
            except BaseException:
                traceback.print_exc()
