"""The pool's timers: timed calls' deadlines, and async calls that will not unwind.

A mixin of ``WorkerPool`` (split from ``_pool.py``, which keeps the bookkeeping): the
dispatcher keeps a :class:`CallTimer` per timed call in ``_timers`` and a heap of
deadlines, selects with the nearest as its timeout, and here fails the calls past it:
a sync one by killing its worker, an async one with CANCEL (its worker is deemed wedged
if it has not stopped ``UNWIND_GRACE`` later). See docs/architecture.md, "Timeouts".
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from .. import _buffers
from .._protocol import CANCEL, Cancel, dumps
from .._timeout import next_check, timeout_error
from ._outcome import kill
from ._worker_handle import WorkerHandle
from .base import Call

#: How long a timed-out async call may take to stop after its CANCEL before its worker
#: is deemed wedged (an event loop blocked by code that never yields) and replaced.
UNWIND_GRACE = 1.0


@dataclass(slots=True)
class CallTimer:
    """A call with a timeout, sent to ``worker``; its clock (monotonic seconds) starts
    when the worker says STARTED: ``started`` and ``last_progress`` are None until then."""

    call: Call
    worker: WorkerHandle
    started: float | None = None
    last_progress: float | None = None


class TimersMixin:
    """Timeouts of ``WorkerPool`` (its lock, workers and books)."""

    def _until_next_deadline_locked(self) -> float | None:
        deadlines = [self._deadlines[0][0]] if self._deadlines else []
        if self._respawn_at is not None:
            deadlines.append(self._respawn_at)
        for worker in self._workers:
            deadlines.extend(worker.unwinding.values())
        if _buffers._spares:  # (unlocked peek: trim_spares takes the lock) spares unused
            spare_due = _buffers.trim_spares()  # for a while are closed: memory back
            if spare_due is not None:
                deadlines.append(time.monotonic() + spare_due)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _started(self, call_id: int) -> None:
        timer = self._timers.get(call_id)
        if timer is not None:
            timer.started = timer.last_progress = now = time.monotonic()
            deadline = next_check(timer.call.task.timeout, now, now)
            heapq.heappush(self._deadlines, (deadline, call_id))

    def _progress(self, call_id: int, heartbeat: bool) -> None:
        """A timed call made progress: a heartbeat, or (``refresh_on="auto"``) an event."""
        timer = self._timers.get(call_id)
        if timer is None or timer.started is None:
            return
        if heartbeat or timer.call.task.timeout.refresh_on == "auto":
            timer.last_progress = time.monotonic()

    def _expire_timed_calls(self) -> None:
        """Fail the calls past their timeout: cancel an async one, kill the worker of a
        sync one (the calls it held besides are innocent and go elsewhere)."""
        now = time.monotonic()
        expired = []
        with self._lock:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, call_id = heapq.heappop(self._deadlines)
                timer = self._timers.get(call_id)
                if timer is None:
                    continue  # finished meanwhile
                call, worker, started = timer.call, timer.worker, timer.started
                if started is None:
                    continue  # sent again (retry, re-queue): it pushes anew when it starts
                running, _ = self._running.get(call_id, (None, None))
                if running is not call:
                    del self._timers[call_id]  # abandoned meanwhile
                    continue
                policy = call.task.timeout
                error = timeout_error(call.task.name, policy, started, timer.last_progress, now)
                if error is None:  # progress moved its idle deadline: look again then
                    deadline = next_check(policy, started, timer.last_progress)
                    heapq.heappush(self._deadlines, (deadline, call_id))
                    continue
                del self._timers[call_id]
                del self._running[call_id]
                if call.task.is_async:
                    del worker.async_calls[call_id]
                    worker.unwinding[call_id] = now + UNWIND_GRACE
                else:
                    worker.remove_sync_call(call)
                    worker.killed = True
                expired.append((call, worker, error))
            wedged = [w for w in self._workers if any(t <= now for t in w.unwinding.values())]
            for worker in wedged:
                worker.killed = True  # its other calls are innocent: they go elsewhere
                worker.unwinding.clear()
        for worker in wedged:
            kill(worker.process)
        for call, worker, error in expired:
            if call.task.is_async:
                worker.send(dumps(Cancel(CANCEL, call.call_id)))
            else:
                kill(worker.process)  # the dispatcher sees it exit and replaces it
            call.deliver(False, error)
