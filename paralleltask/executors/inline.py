"""InlineExecutor: runs each call in the caller's thread, at the call. For debugging."""

from __future__ import annotations

import asyncio
import time

from .. import _execute
from .base import Call, Executor


class InlineExecutor(Executor):
    """Runs a sync task at its call, in the caller's thread (``pdb`` works inside it),
    and an async task as an asyncio task on the run's loop.

    Arguments and results go through the same serialization as on the process pool
    unless ``serialize=False``, so a task that mutates its argument behaves alike on
    every executor. A timeout cannot be enforced here (code in the caller's thread
    cannot be stopped), so tasks with one are refused.
    """

    def __init__(self, *, serialize: bool = True) -> None:
        self.serializes = serialize
        self._async_tasks: dict[int, asyncio.Task] = {}

    def submit(self, call: Call) -> None:
        if call.task.is_async:
            task = _execute.start_async(call, self.serializes, InlineExecutor())
            self._async_tasks[call.call_id] = task
            task.add_done_callback(lambda _t, cid=call.call_id: self._async_tasks.pop(cid, None))
        elif call.claim():
            _execute.run_sync(call, self.serializes, InlineExecutor())

    def retry_later(self, call: Call, delay: float) -> None:
        if call.task.is_async:
            super().retry_later(call, delay)  # never sleep on the run's loop
        else:  # inline means in the caller's thread: wait here, as LangGraph does
            time.sleep(delay)
            self._resubmit(call)

    def cancel(self, call: Call) -> None:
        task = self._async_tasks.get(call.call_id)
        if task is not None:
            task.cancel()

    def __repr__(self) -> str:
        return f"InlineExecutor(serialize={self.serializes})"
