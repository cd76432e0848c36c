"""The body driver: one run of an entrypoint's body, its retries included, from where it
starts on its thread to its checkpoint and cache entry.

A sync body (``invoke``) and an async one (``ainvoke``) take the same steps and differ
only in how the four steps that wait are done: calling the body or awaiting it, waiting
for its task calls, winding them down after a failure, sleeping before a retry.
:func:`_drive` holds the steps once, as a generator that yields each waiting step;
:func:`run_sync` does those steps blocking, :func:`run_async` awaits them, and each sends
the step's outcome back (its value, or its exception thrown in where it was yielded).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from . import _context
from ._cache import entry_key, identity_prefix
from ._call import raised_by_a_task
from ._checkpoint import BODY, Start, as_command
from ._inject import injections
from ._records import entry_task_id
from ._retry import retry_delay
from ._scratch import Scratch
from ._stream import START_TRIGGERS, interrupt_dicts
from ._timeout import Progress, watched
from .errors import EmptyInputError, GraphInterrupt
from .stores.base import MISS, Store

if TYPE_CHECKING:
    from ._run import Run
    from ._stream import Sink
    from .types import TimeoutPolicy

#: Namespace of the entrypoint task ids of runs without a checkpointer.
_RUN_TASK_IDS = uuid.UUID("5d0c6a52-8f0e-4b9e-9a43-3f7d2c1b6e10")

#: The steps :func:`_drive` yields, with their argument: the step's outcome is sent back.
_CALL = "call the body (on the input)"
_SETTLE = "wait for the body's task calls"
_SETTLE_FAILED = "wind the task calls down after the body's failure (the exception)"
_SLEEP = "sleep before the next attempt (the delay)"


class Body(Protocol):
    """What the driver reads of an :class:`Entrypoint`, at each run."""

    name: str
    func: Callable[..., Any]
    retry_policies: tuple
    cache: Store | None
    cache_policy: Any
    timeout: TimeoutPolicy | None
    _injected: Any  # the parameters to inject (see _inject)
    _final: type  # entrypoint.final: the value for the caller and the next previous


class _Raise(NamedTuple):
    """What :func:`_drive` returns for an error the run ends with: the stepper raises it.
    (Raised from the generator, a body's StopIteration would become a RuntimeError.)"""

    error: BaseException


def run_sync(body: Body, run: Run, input: Any) -> Any:
    """Run the body in this thread: each step blocks."""
    steps = _Steps(_drive(body, run, input))
    while True:
        try:
            for step, arg in steps:
                with steps:
                    if step is _CALL:
                        steps.sent = body.func(arg, **injections(run, body._injected, {}))
                    elif step is _SETTLE:
                        run.wait_outstanding()
                    elif step is _SETTLE_FAILED:
                        _end_failed_sync(run, arg)
                    else:
                        time.sleep(arg)
            return steps.result()
        except BaseException as error:  # between two steps (a Ctrl-C): the driver's
            if not steps.caught_between(error):
                raise


async def run_async(body: Body, run: Run, input: Any) -> Any:
    """Run an async body on this event loop: each step is awaited."""
    steps = _Steps(_drive(body, run, input))
    while True:
        try:
            for step, arg in steps:
                with steps:
                    if step is _CALL:
                        steps.sent = await _attempt(body, run, arg)
                    elif step is _SETTLE:
                        await run.await_outstanding()
                    elif step is _SETTLE_FAILED:
                        await _end_failed_async(run, arg)
                    else:
                        await asyncio.sleep(arg)
            return steps.result()
        except BaseException as error:  # between two steps (a Ctrl-C): the driver's
            if not steps.caught_between(error):
                raise


class _Steps:
    """Steps a driver through: iterating gives its next step; ``with`` around doing the
    step keeps the step's exception (any, Ctrl-C too), thrown into the driver next."""

    __slots__ = ("_driver", "_result", "_thrown", "sent")

    def __init__(self, driver: Generator[tuple[str, Any], Any, Any]) -> None:
        self._driver = driver
        self.sent: Any = None  # the step's value, sent to the driver
        self._thrown: BaseException | None = None
        self._result: Any = None

    def __iter__(self) -> _Steps:
        return self

    def __next__(self) -> tuple[str, Any]:
        sent, thrown = self.sent, self._thrown
        self.sent = self._thrown = None
        try:  # an error the driver does not catch (Ctrl-C while it sleeps) goes up
            return self._driver.send(sent) if thrown is None else self._driver.throw(thrown)
        except StopIteration as end:
            self._result = end.value
        raise StopIteration

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        self._thrown = error
        return error is not None

    def caught_between(self, error: BaseException) -> bool:
        """An error raised between two steps, in the stepper's own code (a signal
        handler runs at any function's start): True if the driver is still suspended,
        and then it gets the error as its step's, so its handlers run (stop the calls,
        close the thread, leave the context); False if it came from the driver."""
        if inspect.getgeneratorstate(self._driver) != inspect.GEN_SUSPENDED:
            return False
        self.sent, self._thrown = None, error
        return True

    def result(self) -> Any:
        result, self._result = self._result, None
        if isinstance(result, _Raise):
            raise result.error  # outside any handler: its __context__ stays as it was
        return result


def _drive(body: Body, run: Run, input: Any) -> Generator[tuple[str, Any], Any, Any]:
    """The run's steps, for both paths; reports its start and end to the run's sink
    (and, with a checkpointer, to the thread)."""
    start = _begin(run, input)
    if not start.run_body:
        return start.value
    input = start.input
    if (hit := _cached_run(body, run, input)) is not MISS:
        return hit
    tokens = _context.enter(run)
    try:
        entry_id = _identify(body, run)
        _entry_started(run.sink, body.name, input, entry_id)
        failures = 0
        run.first_attempt_time = time.time()
        while True:
            run.attempt = failures + 1
            try:
                result = yield _CALL, input
                value = _entry_returned(run.sink, body, result, entry_id)
                yield _SETTLE, None
                break
            except GeneratorExit:  # the driver is closed (collected): nothing to run
                raise
            except BaseException as exc:
                yield _SETTLE_FAILED, exc
                if isinstance(exc, GraphInterrupt):
                    return _paused(body, run, exc)
                failures += 1
                delay = retry_delay(body.retry_policies, exc, failures)
                if delay is None:
                    _raising(body, run, exc)
                    return _Raise(exc)
                yield _SLEEP, delay
                _retrying(run)
    finally:
        _context.leave(tokens)
    _entry_finished(run.sink, value)  # streamed before the loop checkpoint, as LangGraph
    _keep_run(body, run, input, value, result)
    return value


async def _attempt(body: Body, run: Run, input: Any) -> Any:
    """One attempt of an async body, watched when the entrypoint has a timeout."""
    if body.timeout is None:
        return await body.func(input, **injections(run, body._injected, {}))
    progress = Progress(body.timeout)
    run.heartbeat = progress.heartbeat
    run.writer = progress.wrap_writer(run.writer)
    coroutine = body.func(input, **injections(run, body._injected, {}))
    return await watched(coroutine, body.name, progress)


def _is_a_failure(exc: BaseException) -> bool:
    """An error of the run's code (an Exception, or SystemExit & co. raised by a
    task); not a Ctrl-C, which stops the run where it is."""
    return isinstance(exc, Exception) or raised_by_a_task(exc)


def _end_failed_sync(run: Run, exc: BaseException) -> None:
    # LangGraph lets a failed body's task calls finish before it raises; Ctrl-C
    # (a KeyboardInterrupt, or a SystemExit, not raised by a task) stops them instead.
    if _is_a_failure(exc):
        try:
            run.wait_outstanding()
            return
        except BaseException:
            pass
    run.stop()


async def _end_failed_async(run: Run, exc: BaseException) -> None:
    # An async body's async tasks are cancelled, its sync tasks finish (LangGraph).
    if isinstance(exc, Exception):
        run.cancel_async_calls()
        try:
            await run.await_outstanding()
            return
        except BaseException:
            pass
    run.stop()


# -- where the run starts, and its own task ---------------------------------------------


def _begin(run: Run, input: Any) -> Start:
    """Where the run starts: its thread decides (fresh, resumed, or nothing to do)."""
    thread = run.checkpoints
    if thread is None:
        if input is None:  # nothing to resume without checkpoints: as LangGraph
            raise EmptyInputError("Received no input for __start__")
        if as_command(input) is not None:
            raise RuntimeError("Cannot use Command(resume=...) without checkpointer")
        run.scratch = Scratch(f"run|{run.info.run_id}")
        return Start(True, input)
    start = thread.begin(input)
    run.info.previous = thread.previous
    run.scratch = thread.scratch(BODY)
    return start


def _identify(body: Body, run: Run) -> str:
    """The entrypoint's own task id, kept in the run's info with the run's checkpoint
    id before any task call carries the info to a worker (``execution_info``)."""
    info = run.info
    info.entry_task_id = entry_id = _entry_id(body, run)
    record = run.checkpoints.record if run.checkpoints is not None else None
    info.checkpoint_id = record["checkpoint_id"] if record else str(uuid.uuid4())
    return entry_id


def _entry_id(body: Body, run: Run) -> str:
    """The id of the entrypoint's own task in this run: with a checkpointer, the one
    its checkpoint and ``get_state`` show (kept when the run resumes), as LangGraph."""
    if run.checkpoints is not None and run.checkpoints.record:
        return entry_task_id(run.checkpoints.record, body.name)
    return str(uuid.uuid5(_RUN_TASK_IDS, f"{os.getpid()}|{run.info.run_id}|{body.name}"))


def _entry_started(sink: Sink | None, name: str, input: Any, entry_id: str) -> None:
    if sink is not None:
        sink.task_started(entry_id, name, input, START_TRIGGERS)


def _entry_returned(sink: Sink | None, body: Body, result: Any, entry_id: str) -> Any:
    """The body returned: the value for the caller, and the entrypoint's own chunks,
    streamed at once (calls still running stream theirs after), as LangGraph's."""
    value = result.value if isinstance(result, body._final) else result
    if sink is not None:
        sink.emit("updates", {body.name: value})
        sink.task_finished(entry_id, body.name, None, {"__end__": value})
    return value


def _entry_finished(sink: Sink | None, value: Any) -> None:
    """Every call has finished: the run's ``values`` chunk."""
    if sink is not None:
        sink.emit("values", value)


# -- how the run ends: paused, retried, kept, or failed ---------------------------------


def _retrying(run: Run) -> None:
    """The body runs again: its calls are numbered afresh, and those that finished
    in the failed attempt are replayed (as LangGraph replays their writes)."""
    if run.checkpoints is not None:
        run.checkpoints.restart()
    run.scratch.asked = 0


def _paused(body: Body, run: Run, exc: GraphInterrupt) -> dict[str, list]:
    """The run stopped at ``interrupt()``: LangGraph's ``{"__interrupt__": [...]}``."""
    if run.checkpoints is None:
        interrupts = list(exc.interrupts)
    else:
        from_calls = {i.id for i in run.checkpoints.interrupts}
        by_body = tuple(i for i in exc.interrupts if i.id not in from_calls)
        interrupts = run.checkpoints.paused(by_body)
    if run.sink is not None:
        paused = {"__interrupt__": tuple(interrupts)}  # one dict, as LangGraph's
        run.sink.emit("updates", paused)
        run.sink.emit("values", paused)
        pauses = interrupt_dicts(interrupts)
        run.sink.task_finished(run.info.entry_task_id, body.name, None, {}, pauses)
    _flush_cache(body)
    paused = {"__interrupt__": interrupts}
    run.ledger.raise_lost(paused)  # a resume needs what was not stored
    return paused


def _run_key(body: Body, input: Any) -> bytes | None:
    if body.cache is None or body.cache_policy is None:
        return None
    return entry_key(identity_prefix(body.func, body.name), body.cache_policy, (input,), {})


def _cached_run(body: Body, run: Run, input: Any) -> Any:
    """With ``cache_policy`` and a cache: the run's value for this input, or MISS."""
    key = _run_key(body, input)
    value = MISS if key is None else body.cache.cache_get(key)
    if value is not MISS and run.sink is not None:
        run.sink.emit("updates", {body.name: value, "__metadata__": {"cached": True}})
        run.sink.emit("values", value)
    return value


def _keep_run(body: Body, run: Run, input: Any, value: Any, result: Any) -> None:
    """The run ended well: checkpoint it, cache its value (with ``cache_policy``),
    and make sure all is stored before the caller sees the result."""
    if run.checkpoints is not None:
        save = result.save if isinstance(result, body._final) else value
        run.checkpoints.finished(value, save)
    key = _run_key(body, input)
    if key is not None:
        watch = run.ledger.watch(("cache", body.name))
        body.cache.cache_put(key, value, body.cache_policy.ttl, None, watch)
    _flush_cache(body)
    # Never a warning alone: a put of this run that failed (any durability; a cache
    # entry too) fails the invoke once all is flushed, the value attached.
    run.ledger.raise_lost(value)


def _flush_cache(body: Body) -> None:
    if body.cache is not None:
        body.cache.flush()


def _raising(body: Body, run: Run, exc: BaseException) -> None:
    if run.checkpoints is not None:
        if _is_a_failure(exc):
            run.checkpoints.failed(exc)
        else:  # Ctrl-C: what finished is kept, the stopped calls are not errors
            run.checkpoints.close()
    _flush_cache(body)
    lost = run.ledger.error(None)
    if lost is not None and hasattr(exc, "add_note"):  # the body's error stays the error
        exc.add_note(f"Also, paralleltask's StoreError: {lost}")
    if isinstance(exc, Exception):
        if hasattr(exc, "add_note"):  # as LangGraph notes it
            note = f"During task with name '{body.name}' and id '{run.info.entry_task_id}'"
            exc.add_note(note)
        if run.sink is not None:
            run.sink.task_finished(run.info.entry_task_id, body.name, exc, {})
