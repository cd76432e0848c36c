"""What runs inside a worker process: pure compute, no state that outlives a call.

Two threads. A reader thread drains the pipe into an inbox as soon as bytes arrive, so
the parent's writes never wait on a busy worker, and handles cancellations at once.
The main thread runs the sync calls in turn; the reader starts async ones at once on an
event loop in a third thread (started on the first async call), where many run
concurrently, even while a sync call holds the main thread. Every
outcome goes back on the same pipe under one lock.

The worker ignores SIGINT (Ctrl-C is the parent's to handle) and exits when its pipe
closes or its parent dies (a watch thread: the pipe may be held open elsewhere), so it
never outlives its parent. A process forked inside a task exits as soon as it returns
into this module: it has no reader thread, and must never write on the worker's pipe.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import signal
import threading
import time
import traceback
from typing import Any

from . import _buffers, _context, _serde
from ._execute import current, run_async_code, run_code
from ._nested import AskingCache, AskingSlots, NestedSlots
from ._protocol import (
    ANSWER,
    ASK,
    BOOT_FAILED,
    CALL,
    CANCEL,
    CANCELLED,
    EVENT,
    HEARTBEAT,
    KEEP,
    NOT_LOADED,
    READY,
    STARTED,
    STOP,
    Ask,
    BootFailed,
    Event,
    Heartbeat,
    Keep,
    Ready,
    Started,
    loads,
)
from ._run import Run
from ._stream import SendingSink
from ._worker_outbox import DONES_AGE, SHORT_CALL, Outbox
from .executors import _limits
from .executors._lifeline import leave_if_forked, watch_parent
from .executors.inline import InlineExecutor

#: Thread-count variables of the numeric libraries, pinned to 1 in workers (as Dask's
#: nanny does) so N workers x M BLAS threads do not oversubscribe the cores.
PINNED_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)


#: How many runs' infos a worker keeps unpickled (the parent sends the bytes each call).
RUNS_KEPT = 64

#: The worker serving in this process (tests read its books), None elsewhere.
serving: _Worker | None = None


class _Unloadable:
    """A task function this worker could not unpickle, and why."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def worker_main(
    conn, boot_blob: bytes, parent_pid: int, watch_memory: bool, buffer_threshold: int | None
) -> None:
    """Entry point of a worker process (started by the pool through loky's context).

    ``boot_blob`` is ``(initializer, initargs)`` pickled by the parent, unpickled here
    once this process knows it is a worker: a module it imports that calls
    ``ProcessExecutor().start()`` at import finds a no-op, and an import that fails is a
    BOOT_FAILED with its traceback (not a worker dead at start without a word).
    """
    global serving
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _context.mark_worker_process()
    watch_parent(parent_pid)
    serving = worker = _Worker(conn, watch_memory, buffer_threshold)
    try:
        initializer, initargs = _serde.loads(boot_blob)
        if initializer is not None:
            initializer(*initargs)
    except BaseException:
        worker.send(BootFailed(BOOT_FAILED, traceback.format_exc()))
        return
    worker.serve()


class _Worker(Outbox):
    def __init__(
        self, conn, watch_memory: bool = False, buffer_threshold: int | None = None
    ) -> None:
        self.conn = conn
        self.pid = os.getpid()
        # Results with buffers this large go back through shared memory (_buffers.py),
        # their descriptors through ``sock`` (a dup of the pipe's socket).
        self.buffer_threshold = buffer_threshold if _buffers.SUPPORTED else None
        self.sock = _buffers.socket_of(conn) if self.buffer_threshold is not None else None
        # Measures RSS after each call when the pool has a max_memory_per_child.
        self.rss = _limits.rss_reader() if watch_memory else None
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.send_lock = threading.Lock()
        # Dones held back while more calls wait (under send_lock), since when, and how
        # long each function's last sync call took here (which decides whether a
        # held Done may wait for the next call: see _send_done).
        self.held: list[tuple] = []
        self.held_since = 0.0
        self.durations: dict[int, float] = {}
        # Dones are held only where the parent can tell, if this process dies, which
        # held call was running: through the progress word (see serve).
        self.progress: Any = None
        self.functions: dict[int, Any] = {}
        self.runs: dict[int, Any] = {}
        self.runs_lock = threading.Lock()
        self.inline = InlineExecutor()  # the executor of every nested run in this worker
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_tasks: dict[int, asyncio.Task] = {}
        # Calls received but not started, and those of them cancelled meanwhile: the
        # reader thread adds, the runner (or the loop, for async calls) removes, under
        # ``calls_lock`` so a CANCEL is never lost between "queued" and "running".
        self.calls_lock = threading.Lock()
        self.queued: set[int] = set()
        self.cancelled: set[int] = set()
        # Questions to the parent about nested calls, waiting for their answers.
        self.questions = itertools.count(1)
        self.answers: dict[int, list] = {}
        self.answered = threading.Condition()

    def serve(self) -> None:
        try:  # (with the descriptor transport only: it carries the word's fd)
            fd, self.progress = _buffers.progress_word() if self.sock is not None else (-1, None)
        except OSError:
            fd, self.progress = -1, None
        self.send(Ready(READY, os.getpid(), self.progress is not None), (fd,) if fd >= 0 else ())
        if fd >= 0:
            os.close(fd)  # (sent: the parent has its own; our mapping keeps the memory)
        threading.Thread(target=self._read_forever, name="paralleltask-reader", daemon=True).start()
        while True:
            order = self.inbox.get()
            if order is None:
                self.flush_held()
                return
            if self.held and (
                self.durations.get(order.fn_id, SHORT_CALL) >= SHORT_CALL
                or time.perf_counter() - self.held_since >= DONES_AGE
            ):
                self.flush_held()  # it may run long: what is done goes back first
            if self.progress is not None:  # read by the parent if this process dies
                _buffers.PROGRESS.pack_into(self.progress, 0, order.call_id)
            started = time.perf_counter()
            self._start_call(*order)  # a CallOrder's fields are _start_call's parameters
            self.durations[order.fn_id] = time.perf_counter() - started

    def _read_forever(self) -> None:
        try:
            while True:
                message = loads(self.conn.recv_bytes())
                kind = message.kind
                if kind == CALL:
                    for fn_id in message.forget:  # the parent's LRU dropped them (_known.py)
                        self.functions.pop(fn_id, None)
                    if any(type(order.args_blob) is tuple for order in message.items):
                        message = self._mapped(message)  # their descriptors follow
                    with self.calls_lock:
                        self.queued.update(order.call_id for order in message.items)
                    for order in message.items:
                        if order.is_async:  # onto the event loop now, not behind a sync call
                            self._start_call(*order)
                        else:
                            self.inbox.put(order)
                elif kind == CANCEL:
                    self._cancel(message.call_id)
                elif kind == ANSWER:
                    with self.answered:
                        self.answers[message.request_id] = [message.found, message.blob]
                        self.answered.notify_all()
                elif kind == STOP:
                    self.inbox.put(None)
        except (EOFError, OSError):
            # The parent is gone (or closed our pipe): nobody will read our results.
            os._exit(0)

    def _mapped(self, message: Any) -> Any:
        """A CALL whose calls have out-of-band segments: receive their descriptors (sent
        right after it, in order) and map each read-only before reading on."""
        items = list(message.items)
        wired = [i for i, order in enumerate(items) if type(order.args_blob) is tuple]
        fds = _buffers.recv_fds(self.sock, sum(items[i].args_blob[2] for i in wired))
        for index in wired:
            count = items[index].args_blob[2]
            mine, fds = fds[:count], fds[count:]
            mapped = _buffers.receive(items[index].args_blob, mine, writable=False)
            items[index] = items[index]._replace(args_blob=mapped)
        return message._replace(items=items)

    # -- questions to the parent ------------------------------------------------------

    def asker(self, call_id: int):
        """``ask(question, payload) -> (found, blob)`` and ``tell(what, payload)`` about
        the nested calls of ``call_id``."""

        def ask(question: str, payload: Any) -> tuple[bool, bytes | None]:
            request = next(self.questions)
            self.send(Ask(ASK, call_id, request, question, payload))
            with self.answered:
                while request not in self.answers:
                    self.answered.wait()
                found, blob = self.answers.pop(request)
            return found, blob

        def tell(what: str, payload: Any) -> None:
            self.send(Keep(KEEP, call_id, what, payload))

        return ask, tell

    # -- one call -------------------------------------------------------------------

    def _start_call(
        self, call_id, fn_id, fn_blob, args_blob, is_async, run_id, run_blob, attempt
    ) -> None:
        """Start one call of a CALL: the fields of its CallOrder (_protocol.py), in order."""
        if fn_blob is not None:  # even for a call skipped: the next ones come without it
            try:
                self.functions[fn_id] = _serde.loads(fn_blob)
            except Exception as exc:  # kept, so every call of it says why
                self.functions[fn_id] = _Unloadable(exc)
        if not is_async and not self._begin(call_id):
            self._send_text(call_id, CANCELLED, "")
            return
        try:
            task = self.functions[fn_id]
            if isinstance(task, _Unloadable):  # a fresh traceback: not one more per call
                raise task.error.with_traceback(None)
            # (args, kwargs[, scratch]) in a list the call empties: no frame of ours
            # keeps the arguments once the call is done (see _run_sync)
            if type(args_blob) is _buffers.Mapped:  # large buffers: views of shared memory
                loaded = [_buffers.loads(args_blob)]
            else:
                loaded = [_serde.loads(args_blob)]
                args_blob = None
            info = self._run_info(run_id, run_blob)
        except Exception as exc:
            self._begin(call_id)  # no longer queued
            self._send_text(call_id, NOT_LOADED, f"{type(exc).__name__}: {exc}")
            return
        if is_async:
            asyncio.run_coroutine_threadsafe(
                self._run_async(call_id, task, loaded.pop(), info, attempt), self._event_loop()
            )
        else:
            self._run_sync(call_id, task, loaded, info, attempt, args_blob)

    def _run_info(self, run_id: int, run_blob: bytes) -> Any:
        """The run a call belongs to, unpickled once per run (the last few are kept).
        Called by the runner (sync calls) and the reader (async calls)."""
        info = self.runs.get(run_id)
        if info is None:
            info = _serde.loads(run_blob)
            with self.runs_lock:
                self.runs[run_id] = info
                while len(self.runs) > RUNS_KEPT:
                    del self.runs[next(iter(self.runs))]
        return info

    def _heartbeat(self, call_id: int, policy: Any):
        """``runtime.heartbeat()`` of a call with an idle timeout: tells the parent,
        which keeps the clock; at most a few messages per idle period."""
        gap = min(0.05, policy.idle_timeout / 10)
        last = [0.0]

        def heartbeat() -> None:
            now = time.monotonic()
            if now - last[0] >= gap:
                last[0] = now
                self.send(Heartbeat(HEARTBEAT, call_id))

        return heartbeat

    def _watch(self, run: Any, call_id: int, task: Any) -> None:
        """A call with a timeout: its clock starts now (the parent keeps it), and its
        heartbeats and writer events reach the parent."""
        policy = task.timeout
        if policy is None:
            return
        self.send(Started(STARTED, call_id))
        if policy.idle_timeout is None:
            return
        run.heartbeat = beat = self._heartbeat(call_id, policy)
        if policy.refresh_on == "auto":  # stream-writer events are progress too
            write = run.writer

            def writer(chunk: Any) -> None:
                beat()
                write(chunk)

            run.writer = writer

    def _call_run(self, call_id: int, task: Any, info: Any, arguments: tuple, attempt, loop=None):
        """The run of the code of one call: inline; chunks go up the pipe while it runs,
        and its nested calls ask the parent's cache and checkpoints over the pipe."""
        modes = info.worker_modes()
        sink = SendingSink(modes, call_id, self._send_chunk) if modes else None
        scratch = arguments[2] if len(arguments) > 2 else None
        cache = slots = None
        if info.has_cache or info.checkpointed:
            ask, tell = self.asker(call_id)
            cache = AskingCache(ask, tell) if info.has_cache else None
            slots = NestedSlots(AskingSlots(ask, tell), b"") if info.checkpointed else None
        run = Run(
            self.inline, loop, info=info, sink=sink, scratch=scratch, cache=cache, checkpoints=slots
        )
        run.of_call(task.name, call_id, attempt)
        self._watch(run, call_id, task)
        return run

    def _send_chunk(self, call_id: int, mode: str, blob: bytes) -> None:
        self.send(Event(EVENT, call_id, mode, blob))

    def _returned(self, ok: bool) -> None:
        """The task's function returned or raised: in a child the task forked, that is
        the child's end (it must never write on this worker's pipe)."""
        if os.getpid() != self.pid:
            leave_if_forked(self.pid, 0 if ok else 1)

    def _run_sync(self, call_id, task, loaded: list, info, attempt, mapped=None) -> None:
        arguments = loaded.pop()
        run = self._call_run(call_id, task, info, arguments, attempt)
        started = time.perf_counter()
        with current(run):
            try:
                value = run_code(run, task, arguments[0], arguments[1], self._returned)
            except BaseException as exc:
                self._send_exception(call_id, exc, time.perf_counter() - started)
                return
        seconds = time.perf_counter() - started
        if mapped is None:
            self._send_value(call_id, value, seconds)
            return
        # Arguments in shared memory: pickle the result, let go of every reference to
        # the arguments, and tell the parent (in the DONE) whether their segments are
        # unmapped here: if so it may write the next call's buffers into them.
        del arguments, run
        blob = self._result_blob(call_id, value, seconds)
        del value
        if blob is not None:
            self._send_result(call_id, blob, seconds, _buffers.unmap(mapped))

    async def _run_async(self, call_id, task, arguments, info, attempt) -> None:
        run = self._call_run(call_id, task, info, arguments, attempt, asyncio.get_running_loop())
        started = time.perf_counter()
        try:
            if not self._begin(call_id, asyncio.current_task()):
                raise asyncio.CancelledError
            # The parent keeps a timed call's clock (STARTED, heartbeats): not here.
            value = await run_async_code(
                run, task, arguments[0], arguments[1], keeps_clock=False, returned=self._returned
            )
        except asyncio.CancelledError:
            self._send_text(call_id, CANCELLED, "")
        except BaseException as exc:
            self._send_exception(call_id, exc, time.perf_counter() - started)
        else:
            self._send_value(call_id, value, time.perf_counter() - started)
        finally:
            self.async_tasks.pop(call_id, None)

    def _begin(self, call_id: int, async_task: asyncio.Task | None = None) -> bool:
        """Move a call from queued to running; False if it was cancelled meanwhile."""
        with self.calls_lock:
            self.queued.discard(call_id)
            if call_id in self.cancelled:
                self.cancelled.discard(call_id)
                return False
            if async_task is not None:
                self.async_tasks[call_id] = async_task
            return True

    def _cancel(self, call_id: int) -> None:
        """Called by the reader thread: skip the call if queued, cancel it if async."""
        with self.calls_lock:
            task = self.async_tasks.get(call_id)
            if task is None and call_id in self.queued:
                self.cancelled.add(call_id)
        if task is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(task.cancel)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            threading.Thread(
                target=self.loop.run_forever, name="paralleltask-loop", daemon=True
            ).start()
        return self.loop
