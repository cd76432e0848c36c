"""The dispatcher thread's loop: one selector over every worker's pipe and sentinel.

A mixin of ``WorkerPool`` (split from ``_pool.py``, which keeps the bookkeeping). Each
turn it waits for a message, a worker's exit, a wake-up (a new worker, shutdown) or the
nearest deadline (a timed call, a respawn), then hands what came to the message
handlers (``_pool_messages.py``), crash recovery (``_pool_recovery.py``) and timers.
"""

from __future__ import annotations

import selectors
import time
import traceback

from .. import _buffers
from .._stream import hold_wakeups, release_wakeups, wake_held
from ._worker_handle import send_all


class DispatcherMixin:
    """The dispatcher thread of ``WorkerPool`` (its lock, workers and books)."""

    def _wake(self) -> None:
        try:
            self._wakeup_writer.send_bytes(b"")
        except OSError:
            pass  # shut down: nothing to wake

    def _dispatch_forever(self) -> None:
        # One selector, rebuilt only when the set of pipes changes: building one per
        # wait (as multiprocessing.connection.wait does) costs more than a message.
        selector = selectors.DefaultSelector()
        generation = None
        holding = False  # stream consumers to wake before the dispatcher waits
        try:
            while True:
                with self._lock:
                    if self.closing and not self._workers:
                        return
                    if generation != self._generation:
                        generation = self._generation
                        selector.close()
                        selector = self._new_selector_locked()
                    wait = self._until_next_deadline_locked()
                events = selector.select(0) if holding else None
                if not events:
                    if holding:
                        wake_held()  # nothing more to deliver now: no chunk waits on us
                    events = selector.select(wait)
                hold_wakeups()  # a stream's consumer wakes once for many chunks
                try:
                    self._handle(events)
                except BaseException:  # nothing may stop the dispatcher: every run would hang
                    traceback.print_exc()
                finally:
                    holding = release_wakeups()
        finally:
            selector.close()
            _buffers.trim_spares(0)  # shut down: no call will reuse a spare segment

    def _handle(self, events: list) -> None:
        for key, _ in events:
            if key.data is None:
                while self._wakeup_reader.poll():
                    self._wakeup_reader.recv_bytes()
                continue
            worker, is_pipe = key.data
            if worker not in self._workers:
                continue
            if is_pipe:
                self._receive_all(worker)
            else:
                self._on_worker_exit(worker)
        if self._deadlines or any(w.unwinding for w in self._workers):
            self._expire_timed_calls()
        if self._owed or (self._respawn_at is not None and self._respawn_at <= time.monotonic()):
            self._respawn()

    def _respawn(self) -> None:
        """Start the replacements due: of retired workers now, of workers that died
        before they booted once their backoff is over (then all that are missing)."""
        with self._lock:
            due = self._respawn_at is not None and self._respawn_at <= time.monotonic()
            most = None if due else self._owed
            if due:
                self._respawn_at = None
            self._owed = 0
            sends = [] if self.closing or self._stalled else self._top_up_locked(most)
        send_all(sends)

    def _new_selector_locked(self) -> selectors.BaseSelector:
        selector = selectors.DefaultSelector()
        selector.register(self._wakeup_reader, selectors.EVENT_READ, None)
        for worker in self._workers:
            if not worker.eof:
                selector.register(worker.conn, selectors.EVENT_READ, (worker, True))
            selector.register(worker.process.sentinel, selectors.EVENT_READ, (worker, False))
        return selector
