"""WorkerPool: long-lived worker processes, one pipe each, one dispatcher thread.

Data flow (compare ``concurrent.futures.process``)::

    caller thread ──submit──▶ idle worker? ──yes──▶ CALL [call] on that worker's pipe
                                 │ no
                                 ▼
                          pending deque (sync calls, FIFO)
                                 ▲                          worker process
                                 │ refill: CALL [calls…]  ┌────────────────────────┐
    dispatcher thread ◀── DONE ──┴────────── pipe ◀───────│ reader ▸ inbox ▸ runner │
         │ free the calls, refill the worker, decode,     └────────────────────────┘
         │ resolve the callers' futures
         └─ sentinel ready: the worker died → fail only the call it was running,
            re-queue the calls it had not started, spawn a replacement

What each actor owns:

- the **caller thread** pickles the arguments (errors at the call site) and, when a
  worker is idle, writes the CALL itself: no hop through another thread;
- the **dispatcher thread** reads every pipe and every process sentinel through one
  selector; it refills a worker with the next pending calls, in one message, before it
  decodes the finished outcomes and resolves their futures;
- the **pool lock** guards the bookkeeping: which worker is idle, which calls each worker
  holds and in what order (a worker runs its sync calls first-in first-out, so the head
  of its queue is the one running: a crash blames exactly that call), and which functions
  each worker has already received (so a function is pickled and sent once).

Prefetch: a worker may hold more than one sync call, so it never waits a round trip for
its next one. How many is adaptive (``_prefetch.py``): about ``PREFETCH_SECONDS`` of
work, from the run times workers report for each task, between 1 (a task whose calls take
``PREFETCH_SECONDS`` or more, or a task not seen yet: no prefetch, no head-of-line
blocking) and ``MAX_PREFETCH`` (tiny calls, sent in batches).
A call queued behind a long one waits for it even if another worker is idle; that is
the price of batching, and it is bounded by ``PREFETCH_SECONDS`` of *expected* work.

Workers come and go without the pool losing its size: a crashed or killed worker is
replaced at once; one that died before it booted after a backoff, until starting is
hopeless (``_boot.py``); one at ``max_tasks_per_child``/``max_memory_per_child`` is retired
(``_limits.py``). The functions a worker holds are an LRU the parent decides
(``_known.py``); the exit path is ``_exit.py``.

``WorkerPool`` is this module (its books, starting and stopping workers, calls in and
cancelled) and mixins, one job each: ``_pool_assign.py`` (which worker gets which calls,
and their CALL), ``_pool_dispatch.py`` (the dispatcher's loop), ``_pool_messages.py``
(what it does with each message), ``_pool_recovery.py`` (a worker's exit),
``_pool_timers.py`` (timeouts). The parent's view of a worker is ``_worker_handle.py``,
run-time estimates ``_prefetch.py``, outcomes and crash errors ``_outcome.py``, the
messages ``paralleltask/_protocol.py``.

Processes come from loky's ``loky`` context (fork+exec on POSIX: no inherited locks or
threads, the resource tracker, ``cpu_count()`` honouring cgroups), not from loky's
executor: its dispatch cannot tell which worker ran what, fails every pending call when
one worker dies, and cannot kill one worker alone. See docs/architecture.md.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from multiprocessing.connection import Pipe

from loky.backend.context import get_context

from .. import _serde
from .._protocol import CANCEL, STOP, Cancel, Stop, dumps
from .._worker import worker_main
from . import _exit
from ._boot import BootRecord
from ._outcome import kill
from ._pool_assign import AssignMixin
from ._pool_dispatch import DispatcherMixin
from ._pool_messages import MessagesMixin
from ._pool_recovery import RecoveryMixin
from ._pool_timers import CallTimer, TimersMixin
from ._prefetch import RunTimes
from ._worker_handle import STOP_GRACE, WorkerHandle, reap, send_all
from .base import CANCELLED, Call

__all__ = ["WorkerPool"]

#: How long start() waits for workers to boot before giving up.
BOOT_TIMEOUT = 120.0


class WorkerPool(AssignMixin, MessagesMixin, RecoveryMixin, TimersMixin, DispatcherMixin):
    """A fixed number of worker processes fed by one dispatcher thread."""

    def __init__(
        self,
        max_workers: int,
        initializer,
        initargs: tuple,
        env: dict[str, str],
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        buffer_threshold: int | None = None,
    ):
        _exit.live_pools.add(self)
        self.max_workers = max_workers
        self._initializer = initializer
        self._initargs = initargs
        self._boot_blob: bytes | None = None  # (initializer, initargs), pickled once
        self._env = env
        self._max_tasks = max_tasks_per_child
        self._max_memory = max_memory_per_child
        self._buffer_threshold = buffer_threshold  # of the results workers send
        self._context = get_context("loky")
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._booted = threading.Condition(self._lock)
        self._workers: list[WorkerHandle] = []
        self._idle: list[WorkerHandle] = []
        self._pending: collections.deque[Call] = collections.deque()
        # Suspects of a crash that could not be pinned on one call: each runs again
        # alone on a worker; the one that crashes alone is the culprit.
        self._quarantine: collections.deque[Call] = collections.deque()
        # call_id -> (call, the worker it was sent to), until its DONE (or its crash).
        self._running: dict[int, tuple[Call, WorkerHandle]] = {}
        self._booting = 0
        # Early deaths and failed starts in a row (see _boot.py); ``_stalled``: the pool
        # gave up starting workers, until the next call or start() tries again.
        self._boot = BootRecord()
        self._stalled = False
        # When the workers that died before booting are replaced (a backoff), and how
        # many retired workers still wait for a replacement (started by the dispatcher).
        self._respawn_at: float | None = None
        self._owed = 0
        self._shut_workers: list[WorkerHandle] = []  # shut down, maybe not exited yet
        self._run_times = RunTimes()  # what sizes the prefetch (_prefetch.py)
        self._wakeup_reader, self._wakeup_writer = Pipe(duplex=False)
        self._dispatcher: threading.Thread | None = None
        self._generation = 0  # bumped whenever the set of pipes to watch changes
        # Calls with a timeout, watched by the dispatcher (_pool_timers.py).
        self._timers: dict[int, CallTimer] = {}
        # (deadline, call_id) of started timed calls, nearest first; an entry may be
        # early (progress moved the idle deadline): it is looked at and pushed again.
        # Only the dispatcher thread touches it.
        self._deadlines: list[tuple[float, int]] = []
        self.closing = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self, wait_ready: bool = True) -> None:
        """Spawn the workers and the dispatcher (once); optionally wait until all booted.

        A pool that gave up starting workers (see ``_boot.py``) tries again here.
        """
        with self._lock:
            sends = self._start_locked()
        send_all(sends)  # before waiting: their send locks are held
        with self._lock:
            if wait_ready:
                deadline = time.monotonic() + BOOT_TIMEOUT
                while not self._stalled and not self._at_strength_locked():
                    if not self._booted.wait(deadline - time.monotonic()):
                        raise TimeoutError(f"workers did not boot in {BOOT_TIMEOUT:.0f}s")
            stalled = self._stalled
        if stalled:
            raise self._boot.start_error()

    def _at_strength_locked(self) -> bool:
        serving = [w for w in self._workers if not w.retiring]
        return len(serving) >= self.max_workers and all(w.booted for w in serving)

    def _start_locked(self) -> list:
        """Start the pool (once), or start again one that gave up; returns the CALL
        messages to send once the pool lock is released (see ``_top_up_locked``)."""
        if self.closing:
            raise RuntimeError("cannot run a task call: its process pool was shut down")
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch_forever, name="paralleltask-dispatcher", daemon=True
            )
            self._dispatcher.start()
        elif not self._stalled:
            return []
        self._stalled = False
        self._boot.reset()
        return self._top_up_locked()

    def _top_up_locked(self, most: int | None = None) -> list:
        """Spawn workers until the pool has ``max_workers`` that take calls (at most
        ``most``); each takes pending calls at once, or idles. Returns ``(worker,
        message)`` pairs whose send locks are held: send them after the pool lock."""
        sends = []
        missing = self.max_workers - sum(1 for w in self._workers if not w.retiring)
        for _ in range(missing if most is None else min(most, missing)):
            fresh = self._add_worker_locked()
            message = self._refill_locked(fresh)
            if message is not None:
                sends.append((fresh, message))
        return sends

    def _add_worker_locked(self) -> WorkerHandle:
        """Spawn one worker; the caller makes it idle or gives it calls."""
        if self._boot_blob is None:  # unpickled in the worker, after it knows it is one
            self._boot_blob = _serde.dumps((self._initializer, self._initargs))
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(
                child_end,
                self._boot_blob,
                os.getpid(),
                self._max_memory is not None,
                self._buffer_threshold,
            ),
            env=self._env,
            name=f"paralleltask-worker-{len(self._workers)}",
        )
        process.start()
        _exit.forget_child(process)  # multiprocessing's exit hook must never join it
        # Only the worker may hold its end: then the worker sees EOF when we die.
        child_end.close()
        worker = WorkerHandle(process, parent_end, self._max_tasks)
        self._workers.append(worker)
        self._generation += 1
        self._booting += 1
        self._wake()
        return worker

    def _retire_locked(self, worker: WorkerHandle) -> None:
        """``worker`` reached a limit (calls, memory): it takes no more calls, gets STOP
        after its last DONE, and the dispatcher starts its replacement now (a pool
        lock holder here may be any thread, which cannot send the replacement's CALL)."""
        worker.retiring = True
        if worker in self._idle:
            self._idle.remove(worker)
        self._owed += 1
        self._wake()

    def _stop_if_retired_locked(self, worker: WorkerHandle) -> bool:
        """True if ``worker`` is retiring and holds nothing more: send it STOP (once)."""
        if not worker.retiring or worker.stop_sent:
            return False
        if worker.sync_calls or worker.async_calls or worker.unwinding:
            return False
        worker.stop_sent = True
        return True

    def kill_workers(self) -> None:
        """SIGKILL every worker process of this pool still running (the exit path)."""
        for worker in [*self._workers, *self._shut_workers]:
            if worker.process.exitcode is None:
                kill(worker.process)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers: after their calls finish (``wait``), or now, cancelling them."""
        with self._lock:
            if self.closing:
                return
            self.closing = True
            if wait:
                while self._running or self._pending or self._quarantine:
                    self._drained.wait()
            busy = {worker for _, worker in self._running.values()}
            abandoned = [call for call, _ in self._running.values()]
            abandoned += [*self._pending, *self._quarantine]
            self._running.clear()
            self._pending.clear()
            self._quarantine.clear()
            self._shut_workers = list(self._workers)
            workers, self._workers = self._workers, []
        for call in abandoned:
            call.deliver(False, CANCELLED)
        for worker in busy:  # only when not waiting: their calls were just cancelled
            kill(worker.process)
        stop = dumps(Stop(STOP))
        for worker in workers:
            worker.send(stop)
        self._wake()
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(STOP_GRACE)
        # The dispatcher has exited: the pipes are ours alone to close.
        reap(workers)
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    # -- calls in -------------------------------------------------------------------

    def submit(self, call: Call) -> None:
        started: list = []
        message = None
        with self._lock:
            if self._dispatcher is None or self.closing or self._stalled:
                started = self._start_locked()  # raises if shut down; a stalled pool retries
            if call.task.is_async:
                shared = [w for w in self._workers if not (w.exclusive or w.retiring)]
                worker = min(shared, key=WorkerHandle.load) if shared else None
            else:
                worker = self._take_idle_locked() if self._idle else None
            if worker is None:  # no idle worker (or every one runs a suspect alone)
                self._pending.append(call)
            else:
                message = self._assign_locked(worker, [call])
                if message is None and not worker.sync_calls and not call.task.is_async:
                    self._idle.append(worker)  # the call was cancelled before it could go
        send_all(started)
        if message is not None:
            worker.send_locked(message)

    def cancel(self, call: Call) -> None:
        """A caller cancelled ``call``: one still pending is skipped when its turn comes;
        one sent to a worker is skipped there if not started, or cancelled if async."""
        with self._lock:
            _, worker = self._running.get(call.call_id, (None, None))
            if worker is not None:
                worker.send_lock.acquire()
        if worker is None:  # not sent (or done): nothing runs, say so
            call.deliver(False, CANCELLED)
            return
        worker.send_locked(dumps(Cancel(CANCEL, call.call_id)))

    def stop(self, calls: list[Call]) -> None:
        """Stop ``calls`` now (Ctrl-C): skip the queued, kill the workers running sync ones.

        Other calls a killed worker held are innocent: they are queued again when the
        dispatcher sees it exit (one that had started runs again).
        """
        doomed: list[WorkerHandle] = []
        cancels: list[tuple[WorkerHandle, int]] = []
        with self._lock:
            for call in calls:
                _, worker = self._running.get(call.call_id, (None, None))
                if worker is None:
                    continue
                if not call.task.is_async and worker.sync_calls[0] is call:
                    worker.killed = True
                    doomed.append(worker)
                else:
                    cancels.append((worker, call.call_id))
        for call in calls:
            call.deliver(False, CANCELLED)
        for worker, call_id in cancels:
            worker.send(dumps(Cancel(CANCEL, call_id)))
        for worker in doomed:
            kill(worker.process)  # the dispatcher sees it die and starts a replacement
