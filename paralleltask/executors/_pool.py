"""WorkerPool: long-lived worker processes, one pipe each, one dispatcher thread.

Data flow (compare ``concurrent.futures.process``)::

    caller thread ──submit──▶ idle worker? ──yes──▶ send CALL on that worker's pipe
                                 │ no
                                 ▼
                          pending deque (sync calls)
                                 ▲                        worker process
                                 │ next call          ┌──────────────────────┐
    dispatcher thread ◀── DONE ──┴──────── pipe ◀─────│ reader ▸ inbox ▸ run │
         │  decode outcome, resolve the caller's future └──────────────────────┘
         └─ sentinel ready: the worker died → fail only its calls, spawn a replacement

What each actor owns:

- the **caller thread** pickles the arguments (errors at the call site) and, when a
  worker is idle, writes the CALL itself: no hop through another thread;
- the **dispatcher thread** reads every pipe and every process sentinel with one
  ``multiprocessing.connection.wait``; it frees a worker, hands it the next pending
  call, then decodes the finished call's outcome and resolves its future;
- the **pool lock** guards the bookkeeping: which worker is idle, which call each
  worker holds (so a crash fails exactly the calls that worker held), which functions
  each worker has already received (so a function is pickled and sent once).

Processes come from loky's ``loky`` context (fork+exec on POSIX: no inherited locks or
threads, the resource tracker, ``cpu_count()`` honouring cgroups), not from loky's
executor: its dispatch cannot tell which worker ran what, fails every pending call when
one worker dies, and cannot kill one worker alone. See docs/architecture.md.
"""

from __future__ import annotations

import atexit
import collections
import os
import pickle
import signal
import threading
import time
import weakref
from multiprocessing.connection import Pipe, wait
from typing import Any

from loky.backend.context import get_context

from .. import serde
from .._protocol import (
    BOOT_FAILED,
    CALL,
    CANCEL,
    CANCELLED,
    DONE,
    NOT_LOADED,
    NOT_PICKLED,
    OK,
    RAISED,
    READY,
    STOP,
)
from ..errors import SerializationError, WorkerCrashedError
from ..worker import worker_main
from . import base

#: How long start() waits for workers to boot before giving up.
BOOT_TIMEOUT = 120.0
#: How long shutdown() lets a worker exit on STOP before killing it.
STOP_GRACE = 5.0


class _WorkerHandle:
    """The parent's view of one worker process."""

    __slots__ = (
        "async_calls",
        "booted",
        "conn",
        "eof",
        "known_functions",
        "process",
        "send_lock",
        "sync_call",
    )

    def __init__(self, process, conn) -> None:
        self.booted = False
        self.eof = False
        self.process = process
        self.conn = conn
        self.send_lock = threading.Lock()
        self.sync_call: base.CallItem | None = None
        self.async_calls: set[int] = set()
        self.known_functions: set[int] = set()

    def send_locked(self, data: bytes) -> None:
        """Write ``data``; the caller holds ``send_lock`` and releases it after."""
        try:
            self.conn.send_bytes(data)
        except OSError:
            pass  # the worker died; its sentinel tells the dispatcher, which fails the call
        finally:
            self.send_lock.release()

    def load(self) -> int:
        return len(self.async_calls) + (1 if self.sync_call is not None else 0)


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
        self._workers: list[_WorkerHandle] = []
        self._idle: list[_WorkerHandle] = []
        self._pending: collections.deque[base.CallItem] = collections.deque()
        self._running: dict[int, tuple[base.CallItem, _WorkerHandle]] = {}
        self._booting = 0
        self._booted = threading.Condition(self._lock)
        self._boot_error: str | None = None
        self._wakeup_reader, self._wakeup_writer = Pipe(duplex=False)
        self._dispatcher: threading.Thread | None = None
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
                raise RuntimeError(f"a worker's initializer failed:\n{self._boot_error}")

    def _start_locked(self) -> None:
        if self.closing:
            raise RuntimeError("this process pool has been shut down")
        if self._dispatcher is not None:
            return
        for _ in range(self.max_workers):
            self._idle.append(self._add_worker_locked())
        self._dispatcher = threading.Thread(
            target=self._dispatch_forever, name="paralleltask-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def _add_worker_locked(self) -> _WorkerHandle:
        """Spawn one worker; the caller makes it idle or gives it a call."""
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
                while self._running or self._pending:
                    self._drained.wait()
            busy = {worker for _, worker in self._running.values()}
            abandoned = [call for call, _ in self._running.values()] + list(self._pending)
            self._running.clear()
            self._pending.clear()
            workers, self._workers = self._workers, []
        for call in abandoned:
            base.CallItem.deliver(call, False, base.CANCELLED)
        for worker in busy:  # only when not waiting: their calls were just cancelled
            _kill(worker.process)
        stop = pickle.dumps((STOP,))
        for worker in workers:
            worker.send_lock.acquire()
            worker.send_locked(stop)
        self._wake()
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(STOP_GRACE)
        # The dispatcher has exited: the pipes are ours alone to close.
        self._reap(workers)
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    @staticmethod
    def _reap(workers: list[_WorkerHandle]) -> None:
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                _kill(worker.process)
                worker.process.join(1.0)
            worker.conn.close()

    # -- calls in -------------------------------------------------------------------

    def submit(self, call: base.CallItem) -> None:
        with self._lock:
            if self._dispatcher is None:
                self._start_locked()
            elif self.closing:
                raise RuntimeError("cannot run a task call: its process pool was shut down")
            if self._boot_error is not None:
                raise RuntimeError(f"the process pool cannot start: {self._boot_error}")
            if call.task.is_async:
                worker = min(self._workers, key=_WorkerHandle.load)
            elif self._idle:
                worker = self._idle.pop()
            else:
                self._pending.append(call)
                return
            message = self._assign_locked(worker, call)
        if message is not None:
            worker.send_locked(message)

    def _assign_locked(self, worker: _WorkerHandle, call: base.CallItem) -> bytes | None:
        """Record ``call`` on ``worker`` and return its CALL message, the send lock held.

        Taking the worker's send lock before the pool lock is released keeps a later
        CANCEL for this call from overtaking its CALL on the pipe.
        """
        if not call.claim():  # cancelled while it waited
            if not call.task.is_async:
                self._idle.append(worker)
            return None
        task = call.task
        fn_id = task.task_id
        fn_blob = None
        if fn_id not in worker.known_functions:
            fn_blob = task.pickled()
            worker.known_functions.add(fn_id)
        self._running[call.call_id] = (call, worker)
        if task.is_async:
            worker.async_calls.add(call.call_id)
        else:
            worker.sync_call = call
        worker.send_lock.acquire()
        return pickle.dumps(
            (CALL, call.call_id, fn_id, fn_blob, call.payload, task.is_async), serde.PROTOCOL
        )

    def _next_locked(self, worker: _WorkerHandle) -> bytes | None:
        """Give a freed worker the next pending call that is still wanted."""
        while self._pending:
            message = self._assign_locked(worker, self._pending.popleft())
            if message is not None:
                return message
            self._idle.pop()  # _assign_locked put the worker back: try the next call
        self._idle.append(worker)
        return None

    def cancel(self, call: base.CallItem) -> None:
        """A caller cancelled ``call``: a queued one is skipped when its turn comes;
        a running async one is cancelled in its worker."""
        if not call.task.is_async:
            return
        with self._lock:
            entry = self._running.get(call.call_id)
            if entry is None:
                return
            worker = entry[1]
            worker.send_lock.acquire()
        worker.send_locked(pickle.dumps((CANCEL, call.call_id)))

    def stop(self, calls: list[base.CallItem]) -> None:
        """Stop ``calls`` now (Ctrl-C): skip the queued, kill the workers running sync ones."""
        doomed: list[_WorkerHandle] = []
        cancels: list[tuple[_WorkerHandle, int]] = []
        with self._lock:
            for call in calls:
                entry = self._running.pop(call.call_id, None)
                if entry is None:
                    continue
                worker = entry[1]
                if call.task.is_async:
                    worker.async_calls.discard(call.call_id)
                    cancels.append((worker, call.call_id))
                else:
                    worker.sync_call = None
                    doomed.append(worker)
        for call in calls:
            base.CallItem.deliver(call, False, base.CANCELLED)
        for worker, call_id in cancels:
            worker.send_lock.acquire()
            worker.send_locked(pickle.dumps((CANCEL, call_id)))
        for worker in doomed:
            _kill(worker.process)  # the dispatcher sees it die and starts a replacement

    # -- the dispatcher thread ------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wakeup_writer.send_bytes(b"")
        except OSError:
            pass  # shut down: nothing to wake

    def _dispatch_forever(self) -> None:
        while True:
            with self._lock:
                if self.closing and not self._workers:
                    return
                by_handle: dict[Any, tuple[_WorkerHandle, bool]] = {}
                for worker in self._workers:
                    if not worker.eof:
                        by_handle[worker.conn] = (worker, True)
                    by_handle[worker.process.sentinel] = (worker, False)
            for ready in wait([self._wakeup_reader, *by_handle]):
                if ready is self._wakeup_reader:
                    while self._wakeup_reader.poll():
                        self._wakeup_reader.recv_bytes()
                    continue
                worker, is_pipe = by_handle[ready]
                if is_pipe:
                    self._receive_all(worker)
                elif worker in self._workers:
                    self._on_worker_exit(worker)

    def _receive_all(self, worker: _WorkerHandle) -> None:
        conn = worker.conn
        try:
            while not worker.eof and conn.poll():
                self._on_message(worker, pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError):
            worker.eof = True  # the worker is exiting; its sentinel will say so

    def _on_message(self, worker: _WorkerHandle, message: tuple) -> None:
        kind = message[0]
        if kind == DONE:
            self._on_done(worker, *message[1:])
        elif kind == READY:
            with self._lock:
                worker.booted = True
                self._booting -= 1
                self._booted.notify_all()
        elif kind == BOOT_FAILED:
            with self._lock:
                self._boot_error = message[1]

    def _on_done(self, worker: _WorkerHandle, call_id: int, status: int, blob: Any) -> None:
        message = None
        with self._lock:
            entry = self._running.pop(call_id, None)
            if entry is None:
                return  # stopped by its run meanwhile
            call = entry[0]
            if call.task.is_async:
                worker.async_calls.discard(call_id)
            else:
                worker.sync_call = None
                if not self.closing or self._pending:
                    message = self._next_locked(worker)
            if self.closing and not self._running and not self._pending:
                self._drained.notify_all()
        if message is not None:
            worker.send_locked(message)
        ok, value = _decode_outcome(call, status, blob)
        call.deliver(ok, value)

    def _on_worker_exit(self, worker: _WorkerHandle) -> None:
        self._receive_all(worker)  # outcomes it sent before dying still count
        worker.process.join(1.0)
        exitcode = worker.process.exitcode
        with self._lock:
            if worker not in self._workers:
                return  # shut down meanwhile
            self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if not worker.booted:
                self._booting -= 1
                if self._boot_error is None:
                    self._boot_error = f"a worker exited with {_describe_exit(exitcode)} at start"
                self._booted.notify_all()
            lost = [c for c, w in self._running.values() if w is worker]
            for call in lost:
                del self._running[call.call_id]
            message = None
            if self._boot_error is not None:
                # Workers cannot start: replacing them would loop. Fail what waits.
                lost += list(self._pending)
                self._pending.clear()
            elif not self.closing:
                fresh = self._add_worker_locked()
                message = self._next_locked(fresh)
            if self.closing and not self._running and not self._pending:
                self._drained.notify_all()
            boot_error = self._boot_error
        worker.conn.close()
        if message is not None:
            fresh.send_locked(message)
        for call in lost:
            if boot_error is not None:
                error: Exception = RuntimeError(f"the process pool cannot start: {boot_error}")
            else:
                error = _crash_error(call, worker.process.pid, exitcode)
            call.deliver(False, error)


def _decode_outcome(call: base.CallItem, status: int, blob: Any) -> tuple[bool, Any]:
    name = call.task.name
    if status == OK:
        try:
            return True, serde.loads(blob)
        except Exception as exc:
            return False, SerializationError(
                f"Task {name!r}: its result could not be unpickled in the parent: "
                f"{type(exc).__name__}: {exc}",
                task=name,
            )
    if status == RAISED:
        try:
            return False, serde.loads_exception(blob)
        except Exception as exc:
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
