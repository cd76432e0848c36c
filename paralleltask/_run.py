"""Run: the state of one invoke, found by task calls through a context variable.

A run knows its executor, the flavour of future its body expects (a
``concurrent.futures.Future`` in a sync body, an ``asyncio.Future`` on the body's loop in
an async one), its :class:`RunInfo` (config, context, stream modes, retry policies: what
a worker needs to know of the run) and, when streaming, its sink. It tracks the calls
still outstanding (a dict, O(1) per call: no scan over all futures) so that the invoke
can wait for them before it returns, as LangGraph does, or stop them all on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _serde
from ._cache import entry_key
from ._call import AsyncCallItem, CallItem, DoneFuture, TaskFuture
from ._stream import WORKER_MODES, Sink, task_id_of
from ._timeout import sync_refused
from .executors.base import CalledTask, Executor
from .stores.base import MISS, Ledger, Store
from .types import ExecutionInfo, Runtime, StreamWriter, _no_op_heartbeat, _no_op_writer

if TYPE_CHECKING:
    from ._checkpoint import ThreadCheckpoints
    from ._scratch import Scratch

ASYNC_IN_SYNC_MESSAGE = "In an sync context async tasks cannot be called"

_run_ids = itertools.count(1)

#: The longest an async run's end waits for its cancelled calls to stop (a worker that
#: never answers cannot hang the run).
CANCEL_GRACE = 5.0


def _settle(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class RunInfo:
    """What code in the run may ask about it, in the parent or in a worker (picklable)."""

    name: str = ""
    config: dict = field(default_factory=dict)
    context: Any = None
    previous: Any = None
    modes: tuple[str, ...] = ()
    retry_policies: tuple = ()
    has_cache: bool = False  # nested calls in a worker ask the parent's cache
    checkpointed: bool = False  # nested calls in a worker ask the parent's checkpoints
    run_id: int = field(default_factory=lambda: next(_run_ids))
    entry_task_id: str = ""  # the entrypoint's own task, in execution_info
    checkpoint_id: str = ""  # the run's checkpoint (or, without one, an id of the run)
    _blob: bytes | None = field(default=None, repr=False, compare=False)

    def worker_modes(self) -> frozenset[str]:
        """The stream modes a worker has chunks for (computed once per run)."""
        modes = self.__dict__.get("_worker_modes")
        if modes is None:
            modes = self.__dict__["_worker_modes"] = WORKER_MODES.intersection(self.modes)
        return modes

    def pickled(self) -> bytes:
        """Pickled once per run; workers cache it by ``run_id``."""
        if self._blob is None:
            self._blob = _serde.dumps(self)
        return self._blob

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_blob"] = None
        state.pop("_worker_modes", None)
        return state


class Run:
    """One invoke's task calls.

    ``loop`` is the body's event loop (an async body: futures are asyncio futures on
    it); ``task_loop`` is where async tasks run when they run in this process: the
    body's loop, or for a sync body under ``ainvoke`` the caller's loop, as LangGraph.
    """

    __slots__ = (
        "_cancelling",
        "_outstanding",
        "attempt",
        "cache",
        "checkpoints",
        "executor",
        "first_attempt_time",
        "heartbeat",
        "info",
        "ledger",
        "loop",
        "scratch",
        "sink",
        "task_id",
        "task_loop",
        "task_name",
        "writer",
    )

    def __init__(
        self,
        executor: Executor,
        loop: asyncio.AbstractEventLoop | None = None,
        task_loop: asyncio.AbstractEventLoop | None = None,
        info: RunInfo | None = None,
        sink: Sink | None = None,
        cache: Store | None = None,
        checkpoints: ThreadCheckpoints | None = None,
        scratch: Scratch | None = None,
        ledger: Ledger | None = None,
    ):
        self.executor = executor
        self.cache = cache
        #: The run's puts that could not be stored (None in a worker: the parent stores)
        self.ledger = ledger
        self.checkpoints = checkpoints  # with a checkpointer: the run's checkpoints
        self.scratch = scratch  # the answers this run's code has to interrupt()
        self.loop = loop
        self.task_loop = loop if loop is not None else task_loop
        self.info = info if info is not None else RunInfo()
        self.sink = sink
        self.writer: StreamWriter = sink.custom if sink is not None else _no_op_writer
        self.heartbeat: Callable[[], None] = _no_op_heartbeat
        self.task_name: str | None = None  # the run of the code of this task's call
        self.task_id: str | None = None  # ... and that call's id
        self.attempt = 1  # of that call, or of the body
        self.first_attempt_time: float | None = None
        self._outstanding: dict[Any, CallItem] = {}
        # cancelled, still running: an asyncio future in an async run, else a cf.Future
        self._cancelling: dict[CallItem, Any] = {}

    def nested(
        self, call: CallItem, executor: Executor, loop: asyncio.AbstractEventLoop | None = None
    ) -> Run:
        """The run of task calls made inside ``call`` (a running call of this run) on
        ``executor`` (inline, where that call runs: no pool is ever started in a worker,
        and a pool thread never waits on its own pool), with the same info, sink and
        cache; its calls have checkpoint slots under ``call``'s."""
        checkpoints = None
        if self.checkpoints is not None and call.slot is not None:
            checkpoints = self.checkpoints.nested(call.slot)
        run = Run(
            executor,
            loop,
            info=self.info,
            sink=self.sink,
            cache=self.cache,
            checkpoints=checkpoints,
            scratch=call.scratch,
            ledger=self.ledger,
        )
        run.of_call(call.task.name, call.call_id, call.attempt())
        return run

    def of_call(self, name: str, call_id: int, attempt: tuple[int, float | None]) -> None:
        """Make this the run of the code of one call of task ``name``: ``attempt`` is
        ``(its number, when the first began)``, as :meth:`CallItem.attempt` says."""
        self.task_name = name
        self.task_id = task_id_of(call_id)
        self.attempt, self.first_attempt_time = attempt

    def config(self) -> dict:
        """The config code in this run sees: the run's, and in a task's own run, with
        that task as ``langgraph_node`` (as LangGraph shows each node its own)."""
        config = self.info.config
        if self.task_name is None:
            return config
        metadata = {**config.get("metadata", {}), "langgraph_node": self.task_name}
        return {**config, "metadata": metadata}

    def runtime(self) -> Runtime:
        info = self.info
        return Runtime(
            context=info.context,
            stream_writer=self.writer,
            heartbeat=self.heartbeat,
            previous=info.previous,
            execution_info=self.execution_info(),
        )

    def execution_info(self) -> ExecutionInfo:
        """Where this code runs, as LangGraph's ``Runtime.execution_info`` says it."""
        info = self.info
        config = info.config
        entry_ns = f"{info.name}:{info.entry_task_id}"
        if self.task_name is None:  # the body's own
            task_id, namespace, run_id = info.entry_task_id, entry_ns, config.get("run_id")
        else:
            task_id = self.task_id or ""
            namespace, run_id = f"{entry_ns}|{self.task_name}:{task_id}", None
        return ExecutionInfo(
            checkpoint_id=info.checkpoint_id,
            checkpoint_ns=namespace,
            task_id=task_id,
            thread_id=config.get("configurable", {}).get("thread_id"),
            run_id=None if run_id is None else str(run_id),
            node_attempt=self.attempt,
            node_first_attempt_time=self.first_attempt_time,
        )

    def call(self, task: CalledTask, args: tuple, kwargs: dict) -> Any:
        """Schedule one call of ``task`` and return its future."""
        if task.is_async and self.task_loop is None:
            raise RuntimeError(ASYNC_IN_SYNC_MESSAGE)
        if task.timeout is not None and not task.is_async:
            self._check_stoppable(task)
        slot = scratch = None
        if self.checkpoints is not None:  # checkpointed: calls are numbered, may be replayed
            slot = self.checkpoints.next_slot()
            value = self.checkpoints.replayed(slot, task.name)
            if value is not MISS:
                if self.sink is not None:
                    self.sink.call_replayed(task.name, args, kwargs)
                return self._done(value)
            scratch = self.checkpoints.scratch(slot)
        cache_key = None
        if task.cache_policy is not None and self.cache is not None:
            cache_key = entry_key(task.cache_prefix(), task.cache_policy, args, kwargs)
            value = self.cache.cache_get(cache_key)
            if value is not MISS:
                return self._cached(task, value, args, kwargs)
        executor = self.executor
        if executor.serializes:
            threshold = executor.buffer_threshold
            payload: Any = _serde.dumps_arguments(task.name, args, kwargs, scratch, threshold)
        else:
            payload = (args, kwargs)
        if self.loop is None:
            future: Any = TaskFuture()
            call: CallItem = CallItem(task, payload, future, executor, self.task_loop, self)
            future.call = call
        else:
            future = self.loop.create_future()
            call = AsyncCallItem(task, payload, future, executor, self.loop, self)
        call.cache_key = cache_key
        call.slot = slot
        call.scratch = scratch
        self._outstanding[future] = call
        future.add_done_callback(self._forget)
        if self.sink is not None:
            self.sink.call_started(call, args, kwargs)
        try:
            executor.submit(call)
        except BaseException:
            self._outstanding.pop(future, None)
            raise
        return future

    def _check_stoppable(self, task: CalledTask) -> None:
        if not self.executor.can_stop_sync_code:
            executor = type(self.executor).__name__
            raise sync_refused(task.name, "Task", f"Here it would run on {executor}")

    def _cached(self, task: CalledTask, value: Any, args: tuple, kwargs: dict) -> Any:
        """A cache hit: answered here, no worker involved; streamed as LangGraph marks it."""
        if self.sink is not None:
            self.sink.emit("updates", {task.name: value, "__metadata__": {"cached": True}})
        return self._done(value)

    def _done(self, value: Any) -> Any:
        """A future born with ``value`` (a cache hit, a replayed call)."""
        if self.loop is None:
            return DoneFuture(value)
        future = self.loop.create_future()
        future.set_result(value)
        return future

    def _forget(self, future: Any) -> None:
        call = self._outstanding.pop(future, None)
        if call is None or not future.cancelled():
            return
        if self.loop is not None:
            # asyncio futures can be cancelled while running: tell the executor, and
            # (where it reports back) let the run's end wait until the call has stopped.
            if call.executor.reports_cancellation:
                self._cancelling[call] = self.loop.create_future()
                if call.settled:
                    self._cancelling.pop(call, None)
            call.executor.cancel(call)
        elif call.started:
            # A sync call cancelled while running runs to its end (TaskFuture.cancel
            # told its executor): the run's end waits for it, as LangGraph's does.
            self._cancelling[call] = cf.Future()
            if call.settled:
                self._cancelling.pop(call, None)

    def cancel_settled(self, call: CallItem) -> None:
        """The executor reported on a cancelled call (from any thread): it has stopped."""
        waiter = self._cancelling.pop(call, None)
        if waiter is None:
            return
        if self.loop is None:
            waiter.set_result(None)
            return
        try:
            self.loop.call_soon_threadsafe(_settle, waiter)
        except RuntimeError:  # the run's loop is closed: nobody waits any more
            pass

    def wait_outstanding(self) -> None:
        """Block until every call of this run has finished (a sync run's end), those
        cancelled while running included."""
        while True:
            pending = [f for f in list(self._outstanding) if not f.done()]
            pending += list(self._cancelling.values())
            if not pending:
                return
            cf.wait(pending)

    async def await_outstanding(self) -> None:
        """Wait until every call of this run has finished (an async run's end), and
        every cancelled one has stopped running."""
        while pending := [f for f in list(self._outstanding) if not f.done()]:
            await asyncio.wait(pending)
        await asyncio.sleep(0)  # done callbacks of just-cancelled futures register here
        if self._cancelling:
            await asyncio.wait(list(self._cancelling.values()), timeout=CANCEL_GRACE)

    def cancel_async_calls(self) -> None:
        """An async body failed: cancel its async tasks still running, as LangGraph does
        (its sync tasks are left to finish)."""
        for future, call in list(self._outstanding.items()):
            if call.task.is_async:
                future.cancel()

    def stop(self) -> None:
        """Ctrl-C: drop what is queued and stop what runs; nothing waits for them."""
        calls = [*self._outstanding.values(), *self._cancelling]
        self._outstanding.clear()
        self._cancelling.clear()
        if calls:
            self.executor.stop(calls)
