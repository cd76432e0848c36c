"""ThreadExecutor: sync calls on a thread pool, for I/O-bound tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

from .. import _execute
from .base import Call, Executor
from .inline import InlineExecutor


class ThreadExecutor(Executor):
    """Runs sync tasks on a pool of threads, async tasks on the run's event loop.

    For I/O-bound work, where the GIL is released while waiting. Arguments and results
    are copied through the wire format unless ``serialize=False``. The pool starts on
    first use and is reused until :meth:`shutdown`. Timeouts are refused (a thread
    cannot be stopped).
    """

    def __init__(self, max_workers: int | None = None, *, serialize: bool = True) -> None:
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers <= 0
        ):
            raise ValueError(f"max_workers must be a positive int or None, got {max_workers!r}")
        self.max_workers = max_workers
        self.serializes = serialize
        self._lock = threading.Lock()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._queued: dict[int, cf.Future] = {}
        self._async_tasks: dict[int, asyncio.Task] = {}

    def start(self) -> ThreadExecutor:
        self._threads()
        return self

    def _threads(self) -> cf.ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = cf.ThreadPoolExecutor(
                        self.max_workers, thread_name_prefix="paralleltask-thread"
                    )
                pool = self._pool
        return pool

    def submit(self, call: Call) -> None:
        if call.task.is_async:
            task = _execute.start_async(call, self.serializes, InlineExecutor())
            self._async_tasks[call.call_id] = task
            task.add_done_callback(lambda _t, cid=call.call_id: self._async_tasks.pop(cid, None))
            return
        self._queued[call.call_id] = self._threads().submit(self._run, call)

    def _run(self, call: Call) -> None:
        self._queued.pop(call.call_id, None)
        if call.claim():
            _execute.run_sync(call, self.serializes, InlineExecutor())

    def cancel(self, call: Call) -> None:
        queued = self._queued.pop(call.call_id, None)
        if queued is not None:
            queued.cancel()
        task = self._async_tasks.get(call.call_id)
        if task is not None:
            task.cancel()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers}, serialize={self.serializes})"
