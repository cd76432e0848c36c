"""ProcessExecutor: the default executor, a process-wide pool of warm workers."""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import loky

from .. import _buffers, _context
from ..errors import SerializationError
from ._limits import as_max_memory, as_max_tasks, as_size
from ._pool import WorkerPool
from .base import Call, Executor

_pools: dict[Any, WorkerPool] = {}
_pools_lock = threading.Lock()
_unshared_keys = itertools.count()  # never reused, unlike id(): no stale pool for a new handle


def _release_pool(key: Any) -> None:
    """Shut down the pool of a handle nobody holds any more (its own, unshared)."""
    with _pools_lock:
        pool = _pools.pop(key, None)
    if pool is not None:
        pool.shutdown(wait=False)


class ProcessExecutor(Executor):
    """Runs task calls in worker processes, so pure-Python work uses every core.

    A ``ProcessExecutor`` is a handle on a pool that belongs to the process: handles
    made with the same settings share one pool, started on first use (or by
    :meth:`start`) and reused by every entrypoint, thread and invoke until
    :meth:`shutdown` or interpreter exit. Handles with different settings (another
    ``max_workers``, say) have pools of their own, each with its own processes: two
    pools of 4 on a 4-core machine run 8 processes on 4 cores.

    Parameters
    ----------
    max_workers:
        Worker processes; defaults to the usable CPU count (``loky.cpu_count()``,
        which honours cgroup quotas and CPU affinity).
    initializer, initargs:
        Called as ``initializer(*initargs)`` once in each worker when it starts.
    env:
        Environment variables for the workers. Workers pin BLAS/OpenMP thread counts to
        1 (``OMP_NUM_THREADS`` and friends) unless set here or in the parent's environment.
    max_tasks_per_child:
        Retire a worker after this many calls (the stdlib's meaning): it gets no more,
        finishes what it holds and exits; a replacement starts at once. None: never.
    max_memory_per_child:
        Retire a worker after a call that leaves its resident set size above this:
        bytes (an int) or a size such as ``"2GiB"`` or ``"500MB"``. The call that went
        over still returns its value. None: never.
    buffer_threshold:
        Buffers of at least this size (bytes, or a size such as ``"4MiB"``; default
        1 MiB) in arguments and results travel through shared memory instead of the
        pipe: numpy arrays (and what is built on them), and ``bytes``/``bytearray``
        passed as an argument or returned. Workers see such arguments read-only.
        None: everything through the pipe. Linux only (elsewhere: None).
    """

    serializes = True
    can_stop_sync_code = True
    reports_cancellation = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        env: dict[str, str] | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | str | None = None,
        buffer_threshold: int | str | None = _buffers.DEFAULT_THRESHOLD,
    ) -> None:
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers <= 0
        ):
            raise ValueError(f"max_workers must be a positive int or None, got {max_workers!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {initializer!r}")
        self.max_workers: int = max_workers or loky.cpu_count()
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.env = dict(env or {})
        self.max_tasks_per_child = as_max_tasks(max_tasks_per_child)
        self.max_memory_per_child = as_max_memory(max_memory_per_child)  # bytes
        threshold = as_size(buffer_threshold, "buffer_threshold")
        self.buffer_threshold = threshold if _buffers.SUPPORTED else None
        # The key holds what the caller chose, not the environment it completes: a
        # library that sets OMP_NUM_THREADS later (Dask's LocalCluster does) must not
        # give ProcessExecutor() a second pool.
        key: Any = (
            self.max_workers,
            initializer,
            self.initargs,
            tuple(sorted(self.env.items())),
            self.max_tasks_per_child,
            self.max_memory_per_child,
            self.buffer_threshold,
        )
        try:
            hash(key)
        except TypeError:  # unhashable settings: a pool of its own, gone with the handle
            key = ("unshared", next(_unshared_keys))
            weakref.finalize(self, _release_pool, key)
        self._key = key
        self._pool_ref: WorkerPool | None = None

    def _pool(self) -> WorkerPool:
        pool = self._pool_ref
        if pool is None or pool.closing:
            if _context.in_worker():
                raise RuntimeError(
                    "paralleltask never starts a process pool inside a worker process; "
                    "runs inside a task execute inline"
                )
            with _pools_lock:
                pool = _pools.get(self._key)
                if pool is None or pool.closing:
                    env = worker_environment(self.env)
                    pool = WorkerPool(
                        self.max_workers,
                        self.initializer,
                        self.initargs,
                        env,
                        self.max_tasks_per_child,
                        self.max_memory_per_child,
                        self.buffer_threshold,
                    )
                    _pools[self._key] = pool
            self._pool_ref = pool
        return pool

    def start(self) -> ProcessExecutor:
        """Start the workers now and wait until each is ready (so that, say, a
        hypothesis deadline is not spent on start-up); idempotent.

        Inside a worker process it does nothing (no pool is ever started there: runs in
        a task execute inline), so a module that starts its pool at import, and that
        workers import for its tasks, works in both.
        """
        if _context.in_worker():
            return self
        self._pool().start(wait_ready=True)
        return self

    def submit(self, call: Call) -> None:
        check_picklable(call)  # here, so a failure is the caller's, never the pool's
        self._pool().submit(call)

    def cancel(self, call: Call) -> None:
        pool = self._pool_ref
        if pool is not None:
            pool.cancel(call)

    def stop(self, calls: list[Call]) -> None:
        pool = self._pool_ref
        if pool is not None:
            pool.stop(calls)

    def shutdown(self, wait: bool = True) -> None:
        """Stop this pool's workers, after their calls finish if ``wait``, else at once
        (cancelling them). The pool is shared: other handles on it start a new one
        on their next call."""
        with _pools_lock:
            pool = _pools.get(self._key)
            if pool is not None:
                del _pools[self._key]
        if pool is not None:
            pool.shutdown(wait=wait)
        self._pool_ref = None

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"


def worker_environment(overrides: dict[str, str] | None) -> dict[str, str]:
    """Variables set in every worker: thread pins unless the user set them, then overrides."""
    from .._worker import PINNED_THREAD_VARIABLES

    env = {name: "1" for name in PINNED_THREAD_VARIABLES if name not in os.environ}
    env.update(overrides or {})
    return env


def check_picklable(call: Call) -> None:
    """Pickle (once, cached) the task's function and the run's info, or raise
    :class:`SerializationError` at the call site."""
    task = call.task
    try:
        task.pickled()
    except Exception as exc:
        raise SerializationError(
            f"Task {task.name!r}: its function cannot be pickled to send it to a worker "
            f"process: {type(exc).__name__}: {exc}. A function defined in __main__, a "
            "closure or a lambda travels by value with every global and closure variable "
            "it uses (and so does a retry_on callable): one of those will not pickle "
            "(a lock, an open file, a connection?). Create it inside the task instead.",
            task=task.name,
        ) from exc
    info = call.run.info
    try:
        info.pickled()
    except Exception as exc:
        raise SerializationError(
            f"Entrypoint {info.name!r}: its run cannot be described to worker processes: "
            f"its config, context or retry policies will not pickle: "
            f"{type(exc).__name__}: {exc}",
            task=task.name,
        ) from exc


_default: ProcessExecutor | None = None


def default_executor() -> ProcessExecutor:
    """The executor of entrypoints that name none: ``ProcessExecutor()``."""
    global _default
    if _default is None:
        _default = ProcessExecutor()
    return _default


def _forget_pools_after_fork() -> None:
    # A forked child inherits the registry (and maybe a held lock) but not the
    # dispatcher threads: it starts afresh.
    global _default, _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()
    _default = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)
