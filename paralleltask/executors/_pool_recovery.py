"""When a worker process ends: blame the call that crashed it, save the others, replace it.

A mixin of ``WorkerPool`` (split from ``_pool.py``, which keeps the bookkeeping); the
dispatcher runs it when a worker's sentinel fires. Only the call a worker was running
fails (its head sync call, or one of its async calls, pinned by running the suspects
again alone); the calls behind it are queued again; a worker that died before it booted
is replaced after a backoff, until starting is hopeless (``_boot.py``).
"""

from __future__ import annotations

import time

from .. import _buffers
from ._outcome import crash_error, describe_exit
from ._worker_handle import WorkerHandle, send_all
from .base import Call


class RecoveryMixin:
    """Crash recovery of ``WorkerPool`` (its lock, workers and books)."""

    def _on_worker_exit(self, worker: WorkerHandle) -> None:
        """A worker process ended: settle what it held, replace it (now, after a
        backoff, or not: see ``_boot.py``), and fail what no worker can serve."""
        self._receive_all(worker)  # outcomes (and READY) it sent before dying still count
        worker.process.join(1.0)
        exitcode = worker.process.exitcode
        failed: list[tuple[Call, Exception]] = []
        with self._lock:
            if worker not in self._workers:
                return  # shut down meanwhile
            self._workers.remove(worker)
            self._generation += 1
            if worker in self._idle:
                self._idle.remove(worker)
            if not worker.booted:
                self._booting -= 1
            held = list(worker.sync_calls)
            running_async = list(worker.async_calls.values())
            for call in (*held, *running_async):
                del self._running[call.call_id]
                self._timers.pop(call.call_id, None)  # a re-queued call gets a new one
            innocent_async: list[Call] = []
            if worker.killed or not worker.booted:
                # Killed by us (stop, timeout): what it held besides is innocent. Dead
                # before READY: it had started nothing (it reads calls only after READY).
                innocent_async = running_async
            else:
                # The sync call it was running and every async call: one of them (or
                # none) crashed it. One suspect is the culprit; several run again alone.
                suspects = _running_sync_call(worker, held)
                suspects.extend(running_async)
                if len(suspects) <= 1 or worker.exclusive:
                    pid = worker.process.pid
                    failed.extend((c, crash_error(c, pid, exitcode)) for c in suspects)
                else:
                    self._quarantine.extend(suspects)
            # The calls behind the head never started: queue them again, first in line.
            self._pending.extendleft(reversed(held))
            sends = self._replace_locked(worker, exitcode)
            if self._stalled and not any(w.booted and not w.retiring for w in self._workers):
                # No worker can start and none is up: what waits for one fails. (While
                # one is up, it serves them.) The next call starts workers again.
                waiting = [*self._pending, *self._quarantine, *innocent_async]
                self._pending.clear()
                self._quarantine.clear()
                innocent_async = []
                failed.extend((c, self._boot.error_for(c.task.name)) for c in waiting)
            elif self._stalled:  # not through submit(), which would start workers again
                self._pending.extend(innocent_async)
                innocent_async = []
            for idle in list(self._idle):  # warm workers take re-queued calls now
                if self._quarantine or self._pending:
                    self._idle.remove(idle)
                    refilled = self._refill_locked(idle)
                    if refilled is not None:
                        sends.append((idle, refilled))
            self._booted.notify_all()
            if self.closing and not (self._running or self._pending or self._quarantine):
                self._drained.notify_all()
        worker.conn.close()
        if worker.sock is not None:
            worker.sock.close()
        send_all(sends)
        for call in innocent_async:
            try:
                self.submit(call)
            except RuntimeError as exc:  # the pool is closing
                call.deliver(False, exc)
        for call, error in failed:
            call.deliver(False, error)

    def _replace_locked(self, worker: WorkerHandle, exitcode: int | None) -> list:
        """Replace a worker that exited: at once (a crash, a kill of ours), after a
        backoff (it died before READY: ``_boot.py``), or not (closing, or retired: its
        replacement was started when it retired). Returns the sends of ``_top_up_locked``."""
        if self.closing or worker.retiring:
            return []
        if worker.booted or worker.killed:
            return self._top_up_locked()
        delay = self._boot.exited_early(worker.boot_error, exitcode, describe_exit(exitcode))
        if delay is None:
            self._stalled = True
        else:
            due = time.monotonic() + delay
            if self._respawn_at is None or due < self._respawn_at:
                self._respawn_at = due  # the dispatcher (this thread) waits for it
        return []


def _running_sync_call(worker: WorkerHandle, held: list[Call]) -> list[Call]:
    """Take the sync call a dead worker was running out of ``held`` (its sync calls in
    order; those left are queued again). Its progress word names it: the calls before it
    had finished, their Dones held back with it (_worker_outbox.Outbox._send_done), and run again;
    without the word, or when it names none of them, the head is the one (Dones are
    never held then, so the calls before it had all reported)."""
    if not held:
        return []
    if worker.progress is not None:
        started = _buffers.PROGRESS.unpack_from(worker.progress)[0]
        for index, call in enumerate(held):
            if call.call_id == started:
                return [held.pop(index)]
    return [held.pop(0)]
