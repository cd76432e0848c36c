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
its next one. How many is adaptive: about ``PREFETCH_SECONDS`` of work, from the run
times workers report for each task, between 1 (a task whose calls take
``PREFETCH_SECONDS`` or more, or a task not seen yet: no prefetch, no head-of-line
blocking) and ``MAX_PREFETCH`` (tiny calls, sent in batches).
A call queued behind a long one waits for it even if another worker is idle; that is
the price of batching, and it is bounded by ``PREFETCH_SECONDS`` of *expected* work.

Processes come from loky's ``loky`` context (fork+exec on POSIX: no inherited locks or
threads, the resource tracker, ``cpu_count()`` honouring cgroups), not from loky's
executor: its dispatch cannot tell which worker ran what, fails every pending call when
one worker dies, and cannot kill one worker alone. See docs/architecture.md.
"""

from __future__ import annotations

import atexit
import collections
import heapq
import os
import pickle
import selectors
import signal
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Pipe
from typing import Any

from loky.backend.context import get_context

from .. import _nested, serde
from .._protocol import (
    ANSWER,
    ASK,
    BOOT_FAILED,
    CALL,
    CANCEL,
    CANCELLED,
    DONE,
    EVENT,
    HEARTBEAT,
    KEEP,
    NOT_LOADED,
    NOT_PICKLED,
    OK,
    RAISED,
    READY,
    STARTED,
    STOP,
)
from .._timeout import next_check, timeout_error
from ..errors import SerializationError, WorkerCrashedError
from ..stream import hold_wakeups, release_wakeups, wake_held
from ..worker import worker_main
from . import base

#: How long start() waits for workers to boot before giving up.
BOOT_TIMEOUT = 120.0
#: How long shutdown() lets a worker exit on STOP before killing it.
STOP_GRACE = 5.0
#: Expected work a worker may hold queued beyond its running call (prefetch target).
PREFETCH_SECONDS = 0.002
#: Most sync calls a worker may hold at once (and so the largest batch message).
MAX_PREFETCH = 64
#: Tasks whose mean run time the pool remembers (then it starts over).
RUN_TIMES_KEPT = 4096
#: How long a timed-out async call may take to stop after its CANCEL before its worker
#: is deemed wedged (an event loop blocked by code that never yields) and replaced.
UNWIND_GRACE = 1.0


class _WorkerHandle:
    """The parent's view of one worker process."""

    __slots__ = (
        "async_calls",
        "booted",
        "conn",
        "eof",
        "exclusive",
        "killed",
        "known_functions",
        "process",
        "send_lock",
        "sync_calls",
        "unwinding",
    )

    def __init__(self, process, conn) -> None:
        self.process = process
        self.conn = conn
        self.send_lock = threading.Lock()
        self.sync_calls: collections.deque[base.CallItem] = collections.deque()
        self.async_calls: dict[int, base.CallItem] = {}
        self.known_functions: set[int] = set()
        self.booted = False
        self.eof = False
        self.killed = False  # by us, to stop a call: its other calls are innocent
        self.exclusive = False  # running one suspect of a crash, alone
        # Async calls timed out and cancelled, not yet reported stopped: call_id -> the
        # time after which the worker is deemed wedged (a loop that never yields).
        self.unwinding: dict[int, float] = {}

    def send_locked(self, data: bytes) -> None:
        """Write ``data``; the caller holds ``send_lock``, released here."""
        try:
            self.conn.send_bytes(data)
        except OSError:
            pass  # the worker died; its sentinel tells the dispatcher, which re-queues
        finally:
            self.send_lock.release()

    def send(self, data: bytes) -> None:
        self.send_lock.acquire()
        self.send_locked(data)

    def load(self) -> int:
        # A worker still unwinding a cancelled call may have a blocked event loop.
        return len(self.async_calls) + len(self.sync_calls) + 1000 * len(self.unwinding)


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def _shutdown_live_pools() -> None:
    # atexit runs after the interpreter has joined every non-daemon thread, so no
    # user thread still waits on a call; and before multiprocessing's own exit
    # handler (registered earlier), which would otherwise wait for the workers.
    for pool in list(_live_pools):
        pool.shutdown(wait=False)


atexit.register(_shutdown_live_pools)


class WorkerPool:
    """A fixed number of worker processes fed by one dispatcher thread."""

    def __init__(self, max_workers: int, initializer, initargs: tuple, env: dict[str, str]):
        _live_pools.add(self)
        self.max_workers = max_workers
        self._initializer = initializer
        self._initargs = initargs
        self._env = env
        self._context = get_context("loky")
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._booted = threading.Condition(self._lock)
        self._workers: list[_WorkerHandle] = []
        self._idle: list[_WorkerHandle] = []
        self._pending: collections.deque[base.CallItem] = collections.deque()
        # Suspects of a crash that could not be pinned on one call: each runs again
        # alone on a worker; the one that crashes alone is the culprit.
        self._quarantine: collections.deque[base.CallItem] = collections.deque()
        self._running: dict[int, tuple[base.CallItem, _WorkerHandle]] = {}
        self._booting = 0
        self._boot_error: str | None = None
        # Mean run time of each task's calls (moving average, by task id). A task not
        # seen yet counts as long: no prefetch until its calls prove short.
        self._run_times: dict[int, float] = {}
        self._wakeup_reader, self._wakeup_writer = Pipe(duplex=False)
        self._dispatcher: threading.Thread | None = None
        self._generation = 0  # bumped whenever the set of pipes to watch changes
        # Calls with a timeout, watched by the dispatcher: call_id -> [call, worker,
        # started, last progress] (monotonic seconds).
        self._timers: dict[int, list] = {}
        # (deadline, call_id) of started timed calls, nearest first; an entry may be
        # early (progress moved the idle deadline): it is looked at and pushed again.
        # Only the dispatcher thread touches it.
        self._deadlines: list[tuple[float, int]] = []
        self.closing = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self, wait_ready: bool = True) -> None:
        """Spawn the workers and the dispatcher (once); optionally wait until all booted."""
        with self._lock:
            self._start_locked()
            if wait_ready:
                deadline = time.monotonic() + BOOT_TIMEOUT
                while self._booting and self._boot_error is None:
                    if not self._booted.wait(deadline - time.monotonic()):
                        raise TimeoutError(f"workers did not boot in {BOOT_TIMEOUT:.0f}s")
            if self._boot_error is not None:
                raise RuntimeError(f"the process pool cannot start: {self._boot_error}")

    def _start_locked(self) -> None:
        if self.closing:
            raise RuntimeError("cannot run a task call: its process pool was shut down")
        if self._boot_error is not None:
            raise RuntimeError(f"the process pool cannot start: {self._boot_error}")
        if self._dispatcher is not None:
            return
        for _ in range(self.max_workers):
            self._idle.append(self._add_worker_locked())
        self._dispatcher = threading.Thread(
            target=self._dispatch_forever, name="paralleltask-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def _add_worker_locked(self) -> _WorkerHandle:
        """Spawn one worker; the caller makes it idle or gives it calls."""
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self._initializer, self._initargs),
            env=self._env,
            name=f"paralleltask-worker-{len(self._workers)}",
        )
        process.start()
        # Only the worker may hold its end: then the worker sees EOF when we die.
        child_end.close()
        worker = _WorkerHandle(process, parent_end)
        self._workers.append(worker)
        self._generation += 1
        self._booting += 1
        self._wake()
        return worker

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
            workers, self._workers = self._workers, []
        for call in abandoned:
            call.deliver(False, base.CANCELLED)
        for worker in busy:  # only when not waiting: their calls were just cancelled
            _kill(worker.process)
        stop = pickle.dumps((STOP,))
        for worker in workers:
            worker.send(stop)
        self._wake()
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(STOP_GRACE)
        # The dispatcher has exited: the pipes are ours alone to close.
        _reap(workers)
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    # -- calls in -------------------------------------------------------------------

    def submit(self, call: base.CallItem) -> None:
        with self._lock:
            if self._dispatcher is None or self.closing or self._boot_error is not None:
                self._start_locked()  # raises if shut down or broken
            if call.task.is_async:
                shared = [w for w in self._workers if not w.exclusive]
                if not shared:  # every worker runs a suspect alone: wait for one
                    self._pending.append(call)
                    return
                worker = min(shared, key=_WorkerHandle.load)
            elif self._idle:
                worker = self._take_idle_locked()
            else:
                self._pending.append(call)
                return
            message = self._assign_locked(worker, [call])
            if message is None and not worker.sync_calls and not call.task.is_async:
                self._idle.append(worker)  # the call was cancelled before it could go
        if message is not None:
            worker.send_locked(message)

    def _take_idle_locked(self) -> _WorkerHandle:
        """An idle worker, a booted one if any (a replacement still starting would make
        the call wait for its start-up while a warm worker idles)."""
        for index in range(len(self._idle) - 1, -1, -1):
            if self._idle[index].booted:
                return self._idle.pop(index)
        return self._idle.pop()

    def _assign_locked(self, worker: _WorkerHandle, calls: list) -> bytes | None:
        """Record ``calls`` on ``worker``; return their CALL message with the worker's
        send lock held (None, lock not taken, if every call was cancelled meanwhile).

        Taking the send lock before the pool lock is released keeps a later CANCEL
        for one of these calls from overtaking their CALL on the pipe.
        """
        items = []
        for call in calls:
            if not call.claim():  # cancelled while it waited: say so (its run may wait)
                call.deliver(False, base.CANCELLED)
                continue
            task = call.task
            fn_blob = None
            if task.task_id not in worker.known_functions:
                fn_blob = task.pickled()
                worker.known_functions.add(task.task_id)
            self._running[call.call_id] = (call, worker)
            if task.timeout is not None:  # its clock starts when the worker says STARTED
                self._timers[call.call_id] = [call, worker, None, None]
            if task.is_async:
                worker.async_calls[call.call_id] = call
            else:
                worker.sync_calls.append(call)
            info = call.run.info
            items.append(
                (
                    call.call_id,
                    task.task_id,
                    fn_blob,
                    call.payload,
                    task.is_async,
                    info.run_id,
                    info.pickled(),
                    call.attempt(),
                )
            )
        if not items:
            return None
        worker.send_lock.acquire()
        return pickle.dumps((CALL, items), serde.PROTOCOL)

    def _refill_locked(self, worker: _WorkerHandle) -> bytes | None:
        """Top up a worker's queue of sync calls from the pending deque, or idle it.

        A call with a timeout is only given to an empty worker, alone: its clock starts
        when it is sent, and no call waits behind it to be killed with it.
        """
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
        depth = self._prefetch_depth(self._pending[0].task) if self._pending else 1
        while self._pending and len(worker.sync_calls) <= depth // 2:
            fair_share = -(-len(self._pending) // len(self._workers))
            take = min(depth - len(worker.sync_calls), fair_share, len(self._pending))
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

    def _prefetch_depth(self, task) -> int:
        """Sync calls a worker may hold: about PREFETCH_SECONDS of expected work, judged
        by the next pending call's task (its calls' mean run time so far); a task with a
        timeout only runs on an empty worker."""
        if task.timeout is not None:
            return 1
        mean = self._run_times.get(task.task_id, PREFETCH_SECONDS)
        return max(1, min(MAX_PREFETCH, int(PREFETCH_SECONDS / max(mean, 1e-7))))

    def _record_run_time(self, task_id: int, seconds: float) -> None:
        mean = self._run_times.get(task_id)
        if mean is None:
            if len(self._run_times) >= RUN_TIMES_KEPT:  # tasks made per call, say
                self._run_times.clear()
            self._run_times[task_id] = seconds
        else:
            self._run_times[task_id] = mean + 0.2 * (seconds - mean)

    def cancel(self, call: base.CallItem) -> None:
        """A caller cancelled ``call``: one still pending is skipped when its turn comes;
        one sent to a worker is skipped there if not started, or cancelled if async."""
        with self._lock:
            entry = self._running.get(call.call_id)
            if entry is not None:
                worker = entry[1]
                worker.send_lock.acquire()
        if entry is None:  # not sent (or done): nothing runs, say so
            call.deliver(False, base.CANCELLED)
            return
        worker.send_locked(pickle.dumps((CANCEL, call.call_id)))

    def stop(self, calls: list[base.CallItem]) -> None:
        """Stop ``calls`` now (Ctrl-C): skip the queued, kill the workers running sync ones.

        Other calls a killed worker held are innocent: they are queued again when the
        dispatcher sees it exit (one that had started runs again).
        """
        doomed: list[_WorkerHandle] = []
        cancels: list[tuple[_WorkerHandle, int]] = []
        with self._lock:
            for call in calls:
                entry = self._running.get(call.call_id)
                if entry is None:
                    continue
                worker = entry[1]
                if not call.task.is_async and worker.sync_calls[0] is call:
                    worker.killed = True
                    doomed.append(worker)
                else:
                    cancels.append((worker, call.call_id))
        for call in calls:
            call.deliver(False, base.CANCELLED)
        for worker, call_id in cancels:
            worker.send(pickle.dumps((CANCEL, call_id)))
        for worker in doomed:
            _kill(worker.process)  # the dispatcher sees it die and starts a replacement

    # -- the dispatcher thread ------------------------------------------------------

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

    # -- timeouts ---------------------------------------------------------------------

    def _until_next_deadline_locked(self) -> float | None:
        deadlines = [self._deadlines[0][0]] if self._deadlines else []
        for worker in self._workers:
            deadlines.extend(worker.unwinding.values())
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _started(self, call_id: int) -> None:
        timer = self._timers.get(call_id)
        if timer is not None:
            timer[2] = timer[3] = now = time.monotonic()
            deadline = next_check(timer[0].task.timeout, now, now)
            heapq.heappush(self._deadlines, (deadline, call_id))

    def _progress(self, call_id: int, heartbeat: bool) -> None:
        """A timed call made progress: a heartbeat, or (``refresh_on="auto"``) an event."""
        timer = self._timers.get(call_id)
        if timer is None or timer[2] is None:
            return
        if heartbeat or timer[0].task.timeout.refresh_on == "auto":
            timer[3] = time.monotonic()

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
                call, worker, started, last = timer
                if started is None:
                    continue  # sent again (retry, re-queue): it pushes anew when it starts
                if self._running.get(call_id, (None,))[0] is not call:
                    del self._timers[call_id]  # abandoned meanwhile
                    continue
                policy = call.task.timeout
                error = timeout_error(call.task.name, policy, started, last, now)
                if error is None:  # progress moved its idle deadline: look again then
                    heapq.heappush(self._deadlines, (next_check(policy, started, last), call_id))
                    continue
                del self._timers[call_id]
                del self._running[call_id]
                if call.task.is_async:
                    del worker.async_calls[call_id]
                    worker.unwinding[call_id] = now + UNWIND_GRACE
                else:
                    _remove_sync_call(worker, call)
                    worker.killed = True
                expired.append((call, worker, error))
            wedged = [w for w in self._workers if any(t <= now for t in w.unwinding.values())]
            for worker in wedged:
                worker.killed = True  # its other calls are innocent: they go elsewhere
                worker.unwinding.clear()
        for worker in wedged:
            _kill(worker.process)
        for call, worker, error in expired:
            if call.task.is_async:
                worker.send(pickle.dumps((CANCEL, call.call_id)))
            else:
                _kill(worker.process)  # the dispatcher sees it exit and replaces it
            call.deliver(False, error)

    def _new_selector_locked(self) -> selectors.BaseSelector:
        selector = selectors.DefaultSelector()
        selector.register(self._wakeup_reader, selectors.EVENT_READ, None)
        for worker in self._workers:
            if not worker.eof:
                selector.register(worker.conn, selectors.EVENT_READ, (worker, True))
            selector.register(worker.process.sentinel, selectors.EVENT_READ, (worker, False))
        return selector

    def _receive_all(self, worker: _WorkerHandle) -> None:
        """Read every message the worker has sent; handle its outcomes as one batch."""
        outcomes = []
        conn = worker.conn
        try:
            while not worker.eof and conn.poll():
                message = pickle.loads(conn.recv_bytes())
                if message[0] == DONE:
                    outcomes.append(message)
                elif message[0] == EVENT:
                    self._on_event(*message[1:])
                    if self._timers:
                        self._progress(message[1], heartbeat=False)
                elif message[0] == HEARTBEAT:
                    self._progress(message[1], heartbeat=True)
                elif message[0] == STARTED:
                    self._started(message[1])
                elif message[0] == ASK:
                    self._on_question(worker, *message[1:])
                elif message[0] == KEEP:
                    self._on_keep(*message[1:])
                else:
                    self._on_status(worker, message)
        except (EOFError, OSError):
            with self._lock:  # the worker is exiting; its sentinel will say so
                worker.eof = True
                self._generation += 1
        if outcomes:
            self._on_done(worker, outcomes)

    def _on_event(self, call_id: int, mode: str, blob: bytes) -> None:
        """A chunk from a running call: to its run's stream, now (before its outcome)."""
        entry = self._running.get(call_id)
        if entry is not None and entry[0].run.sink is not None:
            entry[0].run.sink.emit(mode, serde.loads(blob))

    def _on_question(self, worker, call_id: int, request: int, question: str, payload) -> None:
        """A running call asks about one of its nested calls (cache, checkpoint)."""
        entry = self._running.get(call_id)
        try:
            found, blob = _nested.answer(entry[0], question, payload) if entry else (False, None)
        except Exception:  # a store error: the nested call runs, as on a miss
            found, blob = False, None
        worker.send(pickle.dumps((ANSWER, request, found, blob), serde.PROTOCOL))

    def _on_keep(self, call_id: int, what: str, payload) -> None:
        entry = self._running.get(call_id)
        if entry is not None:
            _nested.keep(entry[0], what, payload)

    def _on_status(self, worker: _WorkerHandle, message: tuple) -> None:
        with self._lock:
            if message[0] == READY:
                worker.booted = True
                self._booting -= 1
                self._booted.notify_all()
            elif message[0] == BOOT_FAILED:
                self._boot_error = f"a worker's initializer failed:\n{message[1]}"

    def _on_done(self, worker: _WorkerHandle, outcomes: list[tuple]) -> None:
        finished = []
        with self._lock:
            for _, call_id, status, blob, seconds in outcomes:
                if self._timers:
                    self._timers.pop(call_id, None)
                entry = self._running.pop(call_id, None)
                if entry is None:
                    worker.unwinding.pop(call_id, None)  # a timed-out call has stopped
                    continue  # (or one abandoned by a shutdown meanwhile)
                call = entry[0]
                if call.task.is_async:
                    del worker.async_calls[call_id]
                else:
                    _remove_sync_call(worker, call)
                    self._record_run_time(call.task.task_id, seconds)
                if status == NOT_LOADED:  # the worker may not hold the function: resend it
                    worker.known_functions.discard(call.task.task_id)
                finished.append((call, status, blob))
            message = self._refill_locked(worker)
            if self.closing and not (self._running or self._pending or self._quarantine):
                self._drained.notify_all()
        if message is not None:
            worker.send_locked(message)
        for call, status, blob in finished:
            if status == OK:
                call.pickled_result = blob  # cache and checkpoint store these bytes as they are
            call.deliver(*decode_outcome(call, status, blob))

    def _on_worker_exit(self, worker: _WorkerHandle) -> None:
        self._receive_all(worker)  # outcomes it sent before dying still count
        worker.process.join(1.0)
        exitcode = worker.process.exitcode
        failed: list[base.CallItem] = []
        restarts: list[tuple[_WorkerHandle, bytes]] = []
        message = None
        with self._lock:
            if worker not in self._workers:
                return  # shut down meanwhile
            self._workers.remove(worker)
            self._generation += 1
            if worker in self._idle:
                self._idle.remove(worker)
            if not worker.booted:
                self._booting -= 1
                if self._boot_error is None and not worker.killed:
                    self._boot_error = f"a worker exited with {_describe_exit(exitcode)} at start"
                self._booted.notify_all()
            held = list(worker.sync_calls)
            for call in (*held, *worker.async_calls.values()):
                del self._running[call.call_id]
            innocent_async: list[base.CallItem] = []
            if worker.killed:  # by stop(): what it held besides the stopped calls is innocent
                innocent_async.extend(worker.async_calls.values())
            else:
                # The head sync call and every async call were running: one of them (or
                # none) crashed it. One suspect is the culprit; several run again alone.
                suspects = [held.pop(0)] if held else []
                suspects.extend(worker.async_calls.values())
                if len(suspects) <= 1 or worker.exclusive:
                    failed.extend(suspects)
                else:
                    self._quarantine.extend(suspects)
            # The calls behind the head never started: queue them again, first in line.
            self._pending.extendleft(reversed(held))
            if self._boot_error is not None:
                # Workers cannot start: replacing them would loop. Fail what waits.
                failed.extend(self._pending)
                failed.extend(self._quarantine)
                self._pending.clear()
                self._quarantine.clear()
            elif not self.closing:
                fresh = self._add_worker_locked()
                message = self._refill_locked(fresh)
                for idle in list(self._idle):  # warm workers take re-queued calls now
                    if (self._quarantine or self._pending) and idle is not fresh:
                        self._idle.remove(idle)
                        refilled = self._refill_locked(idle)
                        if refilled is not None:
                            restarts.append((idle, refilled))
            if self.closing and not (self._running or self._pending or self._quarantine):
                self._drained.notify_all()
            boot_error = self._boot_error
        worker.conn.close()
        if message is not None:
            fresh.send_locked(message)
        for idle, quarantined in restarts:
            idle.send_locked(quarantined)
        for call in innocent_async:
            try:
                self.submit(call)
            except RuntimeError as exc:  # the pool is closing or broken
                call.deliver(False, exc)
        for call in failed:
            if boot_error is not None:
                error: Exception = RuntimeError(f"the process pool cannot start: {boot_error}")
            else:
                error = _crash_error(call, worker.process.pid, exitcode)
            call.deliver(False, error)


def _remove_sync_call(worker: _WorkerHandle, call: base.CallItem) -> None:
    # Outcomes come back in the order the worker ran the calls: almost always the head.
    if worker.sync_calls and worker.sync_calls[0] is call:
        worker.sync_calls.popleft()
    else:
        worker.sync_calls.remove(call)


def _reap(workers: list[_WorkerHandle]) -> None:
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            _kill(worker.process)
            worker.process.join(1.0)
        worker.conn.close()


def decode_outcome(call: base.CallItem, status: int, blob: Any) -> tuple[bool, Any]:
    """A worker's ``(status, blob)`` as ``deliver`` takes it: ``(True, value)`` or
    ``(False, exception)``, with a SerializationError where the bytes will not load."""
    name = call.task.name
    if status == OK:
        try:
            return True, serde.loads(blob)
        except BaseException as exc:  # (a __setstate__ may raise anything)
            return False, SerializationError(
                f"Task {name!r}: its result could not be unpickled in the parent: "
                f"{type(exc).__name__}: {exc}",
                task=name,
            )
    if status == RAISED:
        try:
            return False, serde.loads_exception(blob)
        except serde.UnloadableException as lost:
            failure = lost.failure
            return False, SerializationError(
                f"Task {name!r} raised {lost.described}, an exception that could not be "
                f"unpickled in the parent: {type(failure).__name__}: {failure}\n"
                f"Traceback in the worker:\n{lost.traceback_text}",
                task=name,
            )
        except BaseException as exc:
            return False, SerializationError(
                f"Task {name!r} raised an exception that could not be unpickled in the "
                f"parent: {type(exc).__name__}: {exc}",
                task=name,
            )
    if status == NOT_LOADED:
        return False, SerializationError(
            f"Task {name!r}: its function or arguments could not be unpickled in the "
            f"worker: {blob}",
            task=name,
        )
    if status == NOT_PICKLED:
        type_name, _, error = blob.partition("|")
        return False, SerializationError(
            f"Task {name!r}: its result ({type_name}) cannot be pickled to bring it "
            f"back from the worker: {error}",
            task=name,
        )
    if status == CANCELLED:
        return False, base.CANCELLED
    raise AssertionError(f"unknown outcome status {status}")


def _kill(process) -> None:
    """SIGKILL ``process`` (loky's Popen has no ``kill()``); no error if already gone."""
    try:
        os.kill(process.pid, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _crash_error(call: base.CallItem, pid: int | None, exitcode: int | None) -> WorkerCrashedError:
    return WorkerCrashedError(
        f"Task {call.task.name!r}: the worker process running it (pid {pid}) died "
        f"with {_describe_exit(exitcode)}. Likely causes: a segmentation fault in native "
        "code, a call to os._exit(), or the process being killed for using too much "
        "memory (the OOM killer sends SIGKILL). The pool has started a replacement.",
        task=call.task.name,
        exitcode=exitcode,
    )


def worker_environment(overrides: dict[str, str] | None) -> dict[str, str]:
    """Variables set in every worker: thread pins unless the user set them, then overrides."""
    from ..worker import PINNED_THREAD_VARIABLES

    env = {name: "1" for name in PINNED_THREAD_VARIABLES if name not in os.environ}
    env.update(overrides or {})
    return env
