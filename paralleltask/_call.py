"""A task call on its way out and its outcome on the way back: the run's side.

A run turns each task call into a :class:`CallItem` (its task, its pickled arguments
and the future the caller holds) and hands it to an executor, which sees it as an
``executors.base.Call``. The executor runs it somewhere and reports back exactly once
through :meth:`CallItem.deliver`, from any thread; what the outcome means (retry, cache,
checkpoint, stream, resolve the future) is decided here, never in an executor. A call
knows its run through :class:`CallOwner`, what it needs of one, so this module sits
below ``_run.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import itertools
import threading
import time
import traceback
from typing import Any, Protocol

from ._retry import retry_delay
from ._stream import Sink, call_task_id
from .errors import GraphInterrupt, StoreError
from .executors.base import CANCELLED, CalledTask, Executor
from .stores.base import Ledger


class CallOwner(Protocol):
    """What a call's outcome needs of the run that made it (``_run.Run`` is one)."""

    sink: Sink | None  # the run's stream, if it streams
    cache: Any  # where cached tasks keep their results (a Store), or None
    ledger: Ledger | None  # the run's failed puts; None in a worker's run
    checkpoints: Any  # the run's (``_checkpoint.ThreadCheckpoints``), or None
    info: Any  # ``_run.RunInfo``: the run's retry policies among others

    def cancel_settled(self, call: CallItem) -> None: ...


_call_ids = itertools.count(1)


def number_calls_from(start: int) -> None:
    """Call ids made in this process start at ``start`` (a worker's, so that they
    cannot collide with the parent's: they name tasks in stream chunks)."""
    global _call_ids
    _call_ids = itertools.count(start)


class CallItem:
    """One task call on its way to an executor; resolves the caller's future once."""

    __slots__ = (
        "cache_key",
        "call_id",
        "executor",
        "failures",
        "first_attempt_time",
        "future",
        "in_backoff",
        "loop",
        "payload",
        "run",
        "scratch",
        "settled",
        "slot",
        "started",
        "task",
    )

    def __init__(
        self,
        task: CalledTask,
        payload: Any,
        future: Any,
        executor: Executor,
        loop: asyncio.AbstractEventLoop | None = None,
        run: CallOwner | None = None,
    ):
        self.call_id = next(_call_ids)
        self.task = task
        self.payload = payload
        self.future = future
        self.executor = executor
        #: Where an async task runs when it runs in this process (the run's loop).
        self.loop = loop
        self.run = run
        self.started = False
        self.failures = 0
        self.first_attempt_time: float | None = None  # time.time() of its first attempt
        self.in_backoff = False  # failed; its next attempt waits for a timer
        self.cache_key: bytes | None = None  # where a success is kept, if cached
        self.slot: bytes | None = None  # where a checkpointed run keeps the outcome
        self.settled = False  # the executor reported after the caller cancelled
        self.scratch: Any = None  # the call's answers to interrupt(), when checkpointed

    def claim(self) -> bool:
        """Mark the call as running; False if it was cancelled (or stopped) first.

        Idempotent: a call queued again after its worker died is claimed again.
        """
        if self.started:
            return not self.future.done()
        self.started = True
        return self.future.set_running_or_notify_cancel()

    def attempt(self) -> tuple[int, float]:
        """Which attempt of the call starts now, and when its first started."""
        if self.first_attempt_time is None:
            self.first_attempt_time = time.time()
        return self.failures + 1, self.first_attempt_time

    def deliver(self, ok: bool, value: Any, result_bytes: bytes | None = None) -> None:
        """An attempt ended with a result (``ok``) or an exception: decide what that
        means, in this order: a call the caller cancelled is settled; a failure a retry
        policy accepts is tried again; a success is kept in the cache; the outcome is
        kept in the run's checkpoint; then it is streamed and the caller's future
        resolved. ``result_bytes``, when the executor has them, are the value pickled
        (a worker's): the cache and the checkpoint store them as they are.

        Never raises: what fails on the way (a store that cannot record the result, a
        broken stream) becomes the call's error, so no future is left unresolved; an
        error from the caller's own done-callback is printed, as a thread prints it.
        """
        try:
            if self.future.done():  # cancelled by the caller, or stopped with its run
                self._settle_cancelled(ok, value)
            elif not ok and self._retried_after(value):
                return
            else:
                if ok and self.cache_key is not None:
                    self._keep_in_cache(value, result_bytes)
                if (
                    self.slot is None
                    or value is CANCELLED
                    or not self._keep_in_checkpoint(ok, value, result_bytes)
                ):
                    self._finish(ok, value)
                # else durability="sync": the future resolves once the outcome is stored
        except BaseException as error:
            if self.future.done():
                traceback.print_exc()
            else:
                self.resolve(False, error)

    def _settle_cancelled(self, ok: bool, value: Any) -> None:
        """The executor reported on a call whose future is already cancelled."""
        self.settled = True
        run = self.run
        if run is not None:
            if self.started and value is not CANCELLED and run.sink is not None:
                run.sink.call_finished(self, ok, value)  # it ran: LangGraph streams it
            run.cancel_settled(self)
        self._release()

    def _retried_after(self, error: BaseException) -> bool:
        """A failed attempt: True if another one is scheduled. Marks what is not
        retried, as LangGraph notes a task's error (an interrupt is neither)."""
        if error is CANCELLED or self.run is None or _pauses(error):
            return False
        if not isinstance(error, Exception):
            mark_raised_by_a_task(error)  # SystemExit & co.: a task's, not a Ctrl-C
            return False
        if self._retried(error):
            return True
        if hasattr(error, "add_note"):  # as LangGraph
            task_id = call_task_id(self)
            error.add_note(f"During task with name '{self.task.name}' and id '{task_id}'")
        return False

    def _keep_in_cache(self, value: Any, result_bytes: bytes | None) -> None:
        run = self.run
        ttl = self.task.cache_policy.ttl
        if run.ledger is None:  # a worker's run: the parent stores what it tells
            run.cache.cache_put(self.cache_key, value, ttl, result_bytes)
        else:  # a failed put is the run's error at its end, never silent
            watch = run.ledger.watch(("cache", self.task.name))
            run.cache.cache_put(self.cache_key, value, ttl, result_bytes, watch)

    def _keep_in_checkpoint(self, ok: bool, value: Any, result_bytes: bytes | None) -> bool:
        """Record the outcome in the run's checkpoint; True if the future must wait for
        the commit (``durability="sync"``: :func:`_committed` resolves it)."""
        finish_later = functools.partial(_committed, self, ok, value)
        return self.run.checkpoints.keep_outcome(
            self.slot, self.task.name, ok, value, result_bytes, finish_later
        )

    def _finish(self, ok: bool, value: Any) -> None:
        run = self.run
        if run is not None and run.sink is not None and value is not CANCELLED:
            run.sink.call_finished(self, ok, value)
        self.resolve(ok, value)

    def _retried(self, error: BaseException) -> bool:
        """Schedule another attempt if a retry policy accepts ``error``."""
        policies = self.task.retry_policies or self.run.info.retry_policies
        if not policies:
            return False
        self.failures += 1
        delay = retry_delay(policies, error, self.failures)
        if delay is None:
            return False
        self.in_backoff = True
        self.executor.retry_later(self, delay)
        return True

    def resolve(self, ok: bool, value: Any) -> None:
        """Resolve the caller's future (from any thread)."""
        future = self.future
        self._release()
        if future.done():
            return
        if ok:
            future.set_result(value)
        elif value is CANCELLED:
            _cancel_future(future)
        else:
            future.set_exception(value)

    def _release(self) -> None:
        """The outcome is final: drop what only the way there needed, so that the value
        is held by the future alone and freed with it. The future's link back to this
        call (kept for ``cancel()``) would otherwise make a cycle that only the cycle
        collector frees, holding a large result for as long as that takes. The
        arguments go too (an out-of-band segment closes with them)."""
        self.payload = None
        if isinstance(self.future, TaskFuture):
            self.future.call = None


def _committed(call: CallItem, ok: bool, value: Any, error: StoreError | None) -> None:
    """``durability="sync"``: the call's result was committed (resolve its future) or
    its commit failed: then the call fails with a :class:`StoreError` holding the value
    (not retried: the value exists; what failed is keeping it)."""
    if error is None:
        call._finish(ok, value)
        return
    failed = StoreError(
        f"the result of task {call.task.name!r} was computed but not stored "
        f'(durability="sync"): {error}',
        path=error.path,
        value=value,
    )
    failed.__cause__ = error.__cause__ or error
    call._finish(False, failed)


def mark_raised_by_a_task(error: BaseException) -> None:
    """A BaseException that is not an Exception (SystemExit, KeyboardInterrupt...) came
    from task code: a body that re-raises it fails like any failed body (its other calls
    finish, its checkpoint keeps the error), unlike a Ctrl-C."""
    try:
        error._paralleltask_raised_by_a_task = True  # type: ignore[attr-defined]
    except AttributeError:  # an exception type without a __dict__
        pass


def raised_by_a_task(error: BaseException) -> bool:
    return getattr(error, "_paralleltask_raised_by_a_task", False)


def _pauses(error: BaseException) -> bool:
    """An ``interrupt()``: neither retried nor noted as a failure (LangGraph's rule)."""
    return isinstance(error, GraphInterrupt)


def _cancel_future(future: Any) -> None:
    # A concurrent.futures.Future cannot be cancelled once running; fail it with
    # CancelledError instead, which is what its result() would raise.
    if not future.cancel():
        future.set_exception(cf.CancelledError())


class AsyncCallItem(CallItem):
    """A call whose future is an :class:`asyncio.Future` on the run's event loop."""

    __slots__ = ()

    def claim(self) -> bool:
        return not self.future.done()

    def resolve(self, ok: bool, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(CallItem.resolve, self, ok, value)
        except RuntimeError:  # the run's loop is closed: nobody is waiting any more
            pass


class TaskFuture(cf.Future):
    """The future a task call returns in a sync run: a :class:`concurrent.futures.Future`.

    :meth:`cancel` follows LangGraph's task futures, not ``concurrent.futures``: it
    succeeds unless the call is done. A call not yet started never runs; a running one
    runs to its end (sync code cannot be stopped safely), its outcome is streamed but not
    returned, and its run waits for it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.call: CallItem | None = None

    def cancel(self) -> bool:
        if not super().cancel():  # running, or done
            # concurrent.futures has no public way to cancel a running future: its own
            # states, as its cancel() and set_running_or_notify_cancel() use them.
            with self._condition:
                if self._state != cf._base.RUNNING:
                    return self._state in (cf._base.CANCELLED, cf._base.CANCELLED_AND_NOTIFIED)
                self._state = cf._base.CANCELLED_AND_NOTIFIED  # as if never started
                for waiter in self._waiters:  # cf.wait() and as_completed() callers
                    waiter.add_cancelled(self)
                self._condition.notify_all()
            self._invoke_callbacks()
        call = self.call
        if call is not None:
            call.executor.cancel(call)
            if call.in_backoff:  # no attempt runs: settled now, not when its timer fires
                call.deliver(False, CANCELLED)
        return True


class DoneFuture(cf.Future):
    """A future born finished (a cache hit): no condition of its own to create, since
    nothing ever waits on it (they share one; it only guards the state)."""

    _shared_condition = threading.Condition()

    def __init__(self, value: Any) -> None:
        self._condition = self._shared_condition
        self._state = "FINISHED"
        self._result = value
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
