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

Workers come and go without the pool losing its size: a crashed or killed worker is
replaced at once; one that died before it booted after a backoff, until starting is
hopeless (``_boot.py``); one at ``max_tasks_per_child``/``max_memory_per_child`` is retired
(``_limits.py``). The functions a worker holds are an LRU the parent decides
(``_known.py``); the exit path is ``_exit.py``; timers are ``_pool_timers.py``.

Processes come from loky's ``loky`` context (fork+exec on POSIX: no inherited locks or
threads, the resource tracker, ``cpu_count()`` honouring cgroups), not from loky's
executor: its dispatch cannot tell which worker ran what, fails every pending call when
one worker dies, and cannot kill one worker alone. See docs/architecture.md.
"""

from __future__ import annotations

import collections
import os
import pickle
import selectors
import threading
import time
import traceback
from multiprocessing.connection import Pipe

from loky.backend.context import get_context

from .. import _nested, serde
from .._call import CANCELLED, CallItem
from .._protocol import (
    ANSWER,
    ASK,
    BOOT_FAILED,
    CALL,
    CANCEL,
    DONE,
    EVENT,
    HEARTBEAT,
    KEEP,
    OK,
    READY,
    STARTED,
    STOP,
)
from ..stream import hold_wakeups, release_wakeups, wake_held
from ..worker import worker_main
from . import _exit
from ._boot import BootRecord
from ._known import FUNCTIONS_KEPT, KnownFunctions
from ._outcome import crash_error, decode_outcome, describe_exit, kill, worker_environment
from ._pool_timers import TimersMixin, remove_sync_call

__all__ = ["WorkerPool", "decode_outcome", "worker_environment"]

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


class _WorkerHandle:
    """The parent's view of one worker process."""

    __slots__ = (
        "async_calls",
        "boot_error",
        "booted",
        "calls_left",
        "conn",
        "eof",
        "exclusive",
        "killed",
        "known_functions",
        "process",
        "retiring",
        "send_lock",
        "stop_sent",
        "sync_calls",
        "unwinding",
    )

    def __init__(self, process, conn, calls_left: int | None) -> None:
        self.process = process
        self.conn = conn
        self.send_lock = threading.Lock()
        self.sync_calls: collections.deque[CallItem] = collections.deque()
        self.async_calls: dict[int, CallItem] = {}
        self.known_functions = KnownFunctions()
        self.booted = False
        self.boot_error: str | None = None  # its BOOT_FAILED traceback
        self.eof = False
        self.killed = False  # by us, to stop a call: its other calls are innocent
        self.exclusive = False  # running one suspect of a crash, alone
        # Calls it may still be given (max_tasks_per_child), None: no limit. A worker
        # at a limit is retiring: no more calls, STOP after its last DONE, and its
        # replacement already started (so it is never replaced again when it exits).
        self.calls_left = calls_left
        self.retiring = False
        self.stop_sent = False
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


class WorkerPool(TimersMixin):
    """A fixed number of worker processes fed by one dispatcher thread."""

    def __init__(
        self,
        max_workers: int,
        initializer,
        initargs: tuple,
        env: dict[str, str],
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
    ):
        _exit.live_pools.add(self)
        self.max_workers = max_workers
        self._initializer = initializer
        self._initargs = initargs
        self._boot_blob: bytes | None = None  # (initializer, initargs), pickled once
        self._env = env
        self._max_tasks = max_tasks_per_child
        self._max_memory = max_memory_per_child
        self._context = get_context("loky")
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._booted = threading.Condition(self._lock)
        self._workers: list[_WorkerHandle] = []
        self._idle: list[_WorkerHandle] = []
        self._pending: collections.deque[CallItem] = collections.deque()
        # Suspects of a crash that could not be pinned on one call: each runs again
        # alone on a worker; the one that crashes alone is the culprit.
        self._quarantine: collections.deque[CallItem] = collections.deque()
        self._running: dict[int, tuple[CallItem, _WorkerHandle]] = {}
        self._booting = 0
        # Early deaths and failed starts in a row (see _boot.py); ``_stalled``: the pool
        # gave up starting workers, until the next call or start() tries again.
        self._boot = BootRecord()
        self._stalled = False
        # When the workers that died before booting are replaced (a backoff), and how
        # many retired workers still wait for a replacement (started by the dispatcher).
        self._respawn_at: float | None = None
        self._owed = 0
        self._shut_workers: list[_WorkerHandle] = []  # shut down, maybe not exited yet
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
        """Spawn the workers and the dispatcher (once); optionally wait until all booted.

        A pool that gave up starting workers (see ``_boot.py``) tries again here.
        """
        with self._lock:
            sends = self._start_locked()
        _send_all(sends)  # before waiting: their send locks are held
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

    def _add_worker_locked(self) -> _WorkerHandle:
        """Spawn one worker; the caller makes it idle or gives it calls."""
        if self._boot_blob is None:  # unpickled in the worker, after it knows it is one
            self._boot_blob = serde.dumps((self._initializer, self._initargs))
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self._boot_blob, os.getpid(), self._max_memory is not None),
            env=self._env,
            name=f"paralleltask-worker-{len(self._workers)}",
        )
        process.start()
        _exit.forget_child(process)  # multiprocessing's exit hook must never join it
        # Only the worker may hold its end: then the worker sees EOF when we die.
        child_end.close()
        worker = _WorkerHandle(process, parent_end, self._max_tasks)
        self._workers.append(worker)
        self._generation += 1
        self._booting += 1
        self._wake()
        return worker

    def _retire_locked(self, worker: _WorkerHandle) -> None:
        """``worker`` reached a limit (calls, memory): it takes no more calls, gets STOP
        after its last DONE, and the dispatcher starts its replacement now (a pool
        lock holder here may be any thread, which cannot send the replacement's CALL)."""
        worker.retiring = True
        if worker in self._idle:
            self._idle.remove(worker)
        self._owed += 1
        self._wake()

    def _stop_if_retired_locked(self, worker: _WorkerHandle) -> bool:
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

    def submit(self, call: CallItem) -> None:
        started: list = []
        message = None
        with self._lock:
            if self._dispatcher is None or self.closing or self._stalled:
                started = self._start_locked()  # raises if shut down; a stalled pool retries
            if call.task.is_async:
                shared = [w for w in self._workers if not (w.exclusive or w.retiring)]
                worker = min(shared, key=_WorkerHandle.load) if shared else None
            else:
                worker = self._take_idle_locked() if self._idle else None
            if worker is None:  # no idle worker (or every one runs a suspect alone)
                self._pending.append(call)
            else:
                message = self._assign_locked(worker, [call])
                if message is None and not worker.sync_calls and not call.task.is_async:
                    self._idle.append(worker)  # the call was cancelled before it could go
        _send_all(started)
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
        return pickle.dumps((CALL, items, forget), serde.PROTOCOL)

    def _refill_locked(self, worker: _WorkerHandle) -> bytes | None:
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
        depth = self._prefetch_depth(self._pending[0].task) if self._pending else 1
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

    def cancel(self, call: CallItem) -> None:
        """A caller cancelled ``call``: one still pending is skipped when its turn comes;
        one sent to a worker is skipped there if not started, or cancelled if async."""
        with self._lock:
            entry = self._running.get(call.call_id)
            if entry is not None:
                worker = entry[1]
                worker.send_lock.acquire()
        if entry is None:  # not sent (or done): nothing runs, say so
            call.deliver(False, CANCELLED)
            return
        worker.send_locked(pickle.dumps((CANCEL, call.call_id)))

    def stop(self, calls: list[CallItem]) -> None:
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
            call.deliver(False, CANCELLED)
        for worker, call_id in cancels:
            worker.send(pickle.dumps((CANCEL, call_id)))
        for worker in doomed:
            kill(worker.process)  # the dispatcher sees it die and starts a replacement

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
        _send_all(sends)

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
                self._boot.booted()
                self._booted.notify_all()
            elif message[0] == BOOT_FAILED:  # it exits next: _on_worker_exit counts it
                worker.boot_error = message[1]

    def _on_done(self, worker: _WorkerHandle, outcomes: list[tuple]) -> None:
        finished = []
        with self._lock:
            for _, call_id, status, blob, seconds, rss in outcomes:
                if self._timers:
                    self._timers.pop(call_id, None)
                if rss is not None and rss > self._max_memory and not worker.retiring:
                    self._retire_locked(worker)  # the call that pushed it over returns
                entry = self._running.pop(call_id, None)
                if entry is None:
                    worker.unwinding.pop(call_id, None)  # a timed-out call has stopped
                    continue  # (or one abandoned by a shutdown meanwhile)
                call = entry[0]
                if call.task.is_async:
                    del worker.async_calls[call_id]
                else:
                    remove_sync_call(worker, call)
                    self._record_run_time(call.task.task_id, seconds)
                # (NOT_LOADED: the worker keeps what it could not load, and says why at
                # every call: the two books of known functions stay the same.)
                finished.append((call, status, blob))
            message = self._refill_locked(worker)
            stop = worker.retiring and self._stop_if_retired_locked(worker)
            if self.closing and not (self._running or self._pending or self._quarantine):
                self._drained.notify_all()
        if message is not None:
            worker.send_locked(message)
        if stop:  # after its last DONE: it exits, and the dispatcher sees it go
            worker.send(pickle.dumps((STOP,)))
        for call, status, blob in finished:
            ok, value = decode_outcome(call, status, blob)
            call.deliver(ok, value, blob if status == OK else None)

    def _on_worker_exit(self, worker: _WorkerHandle) -> None:
        """A worker process ended: settle what it held, replace it (now, after a
        backoff, or not: see ``_boot.py``), and fail what no worker can serve."""
        self._receive_all(worker)  # outcomes (and READY) it sent before dying still count
        worker.process.join(1.0)
        exitcode = worker.process.exitcode
        failed: list[tuple[CallItem, Exception]] = []
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
            innocent_async: list[CallItem] = []
            if worker.killed or not worker.booted:
                # Killed by us (stop, timeout): what it held besides is innocent. Dead
                # before READY: it had started nothing (it reads calls only after READY).
                innocent_async = running_async
            else:
                # The head sync call and every async call were running: one of them (or
                # none) crashed it. One suspect is the culprit; several run again alone.
                suspects = [held.pop(0)] if held else []
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
        _send_all(sends)
        for call in innocent_async:
            try:
                self.submit(call)
            except RuntimeError as exc:  # the pool is closing
                call.deliver(False, exc)
        for call, error in failed:
            call.deliver(False, error)

    def _replace_locked(self, worker: _WorkerHandle, exitcode: int | None) -> list:
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


def _send_all(sends: list) -> None:
    """Send ``(worker, message)`` pairs whose send locks are held (see _assign_locked)."""
    for worker, message in sends:
        worker.send_locked(message)


def _reap(workers: list[_WorkerHandle]) -> None:
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            kill(worker.process)
            worker.process.join(1.0)
        worker.conn.close()
