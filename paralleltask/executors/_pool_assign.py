"""Which worker gets which calls, and the CALL message that carries them.

A mixin of ``WorkerPool`` (split from ``_pool.py``, which keeps the bookkeeping): the
hot path of every call, run under the pool lock by the caller thread (a call to an idle
worker) or the dispatcher (a refill after DONE, a re-queue after a crash). A worker is
given about ``PREFETCH_SECONDS`` of expected work (``_prefetch.py``); a call with a
timeout, or a suspect of a crash, runs on an empty worker alone.
"""

from __future__ import annotations

from .._protocol import dumps_call, wire_call_order
from ._known import FUNCTIONS_KEPT
from ._pool_timers import CallTimer
from ._worker_handle import Outgoing, WorkerHandle
from .base import CANCELLED


class AssignMixin:
    """Assignment of ``WorkerPool``'s calls to its workers (its lock, workers and books)."""

    def _take_idle_locked(self) -> WorkerHandle:
        """An idle worker, a booted one if any (a replacement still starting would make
        the call wait for its start-up while a warm worker idles)."""
        for index in range(len(self._idle) - 1, -1, -1):
            if self._idle[index].booted:
                return self._idle.pop(index)
        return self._idle.pop()

    def _assign_locked(self, worker: WorkerHandle, calls: list) -> bytes | Outgoing | None:
        """Record ``calls`` on ``worker``; return their CALL message with the worker's
        send lock held (None, lock not taken, if every call was cancelled meanwhile).

        Taking the send lock before the pool lock is released keeps a later CANCEL
        for one of these calls from overtaking their CALL on the pipe.
        """
        items = []
        segments = []  # the calls' out-of-band segments: their fds go after the CALL
        known = worker.known_functions
        for call in calls:
            if not call.claim():  # cancelled while it waited: say so (its run may wait)
                call.deliver(False, CANCELLED)
                continue
            task = call.task
            if task.task_id in known:  # (KnownFunctions.need, inlined: the hot path)
                known.move_to_end(task.task_id)
                fn_blob = None
            else:
                known[task.task_id] = None
                fn_blob = task.pickled()
            self._running[call.call_id] = (call, worker)
            if task.timeout is not None:  # its clock starts when the worker says STARTED
                self._timers[call.call_id] = CallTimer(call, worker)
            if task.is_async:
                worker.async_calls[call.call_id] = call
            else:
                worker.sync_calls.append(call)
            info = call.run.info
            args_blob = call.payload
            if type(args_blob) is not bytes:  # large buffers in a shared-memory segment
                for segment in args_blob.segments:
                    segment.sending()  # (unmapped again once its DONE says so)
                segments.extend(args_blob.segments)
                args_blob = args_blob.wire()
            items.append(
                wire_call_order(
                    call_id=call.call_id,
                    fn_id=task.task_id,
                    fn_blob=fn_blob,
                    args_blob=args_blob,
                    is_async=task.is_async,
                    run_id=info.run_id,
                    run_blob=info.pickled(),
                    attempt=call.attempt(),
                )
            )
            if worker.calls_left is not None:  # max_tasks_per_child
                worker.calls_left -= 1
                if worker.calls_left == 0:
                    self._retire_locked(worker)
        if not items:
            return None
        forget = ()
        if len(known) > FUNCTIONS_KEPT:  # the LRU drops functions no held call needs
            held = {c.task.task_id for c in (*worker.sync_calls, *worker.async_calls.values())}
            forget = known.evict(held)
        worker.send_lock.acquire()
        message = dumps_call(items, forget)
        # The segments themselves, not their fd numbers: held until sent, so a call
        # settled meanwhile (stop(), shutdown) cannot close one under the send.
        return Outgoing(message, segments) if segments else message

    def _refill_locked(self, worker: WorkerHandle) -> bytes | None:
        """Top up a worker's queue of sync calls from the pending deque, or idle it.

        A call with a timeout is only given to an empty worker, alone: its clock starts
        when it is sent, and no call waits behind it to be killed with it.
        """
        if worker.retiring:
            return None  # at a limit: no more calls; its replacement takes them
        if worker.exclusive:
            if worker.sync_calls or worker.async_calls:
                return None  # its suspect still runs
            worker.exclusive = False
        while self._quarantine and not worker.sync_calls and not worker.async_calls:
            message = self._assign_locked(worker, [self._quarantine.popleft()])
            if message is not None:
                worker.exclusive = True
                if worker in self._idle:
                    self._idle.remove(worker)
                return message
        depth = self._run_times.prefetch_depth(self._pending[0].task) if self._pending else 1
        while self._pending and len(worker.sync_calls) <= depth // 2:
            fair_share = -(-len(self._pending) // len(self._workers))
            take = min(depth - len(worker.sync_calls), fair_share, len(self._pending))
            if worker.calls_left is not None:  # never more than it may still run
                take = min(take, worker.calls_left)
            batch = [self._pending.popleft()]
            while len(batch) < take and self._pending[0].task.timeout is None:
                batch.append(self._pending.popleft())
            message = self._assign_locked(worker, batch)
            if message is not None:
                return message
            # every call of that batch had been cancelled: try the next ones
        if not worker.sync_calls and worker not in self._idle:
            self._idle.append(worker)
        return None
