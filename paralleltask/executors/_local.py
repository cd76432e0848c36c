"""Running a call in this process: shared by the inline and thread executors."""

from __future__ import annotations

import asyncio
from typing import Any

from .. import _context, serde
from .._call import CANCELLED, CallItem
from .._inject import injections
from .._timeout import Progress, watched
from ..errors import SerializationError


def arguments(call: CallItem, serializes: bool) -> tuple[tuple, dict]:
    """The call's ``(args, kwargs)``: fresh copies when the executor serializes."""
    loaded = serde.loads(call.payload) if serializes else call.payload
    return loaded[0], loaded[1]


def outcome_of_value(call: CallItem, value: Any, serializes: bool) -> tuple[bool, Any]:
    """``(True, value)``, copied through the wire format when the executor serializes."""
    if not serializes:
        return True, value
    try:
        return True, serde.copy_value(value)
    except Exception as exc:
        return False, result_error(call.task.name, value, exc)


def result_error(task_name: str, value: Any, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"Task {task_name!r}: its result ({type(value).__name__}) cannot be pickled "
        f"to bring it back from the worker: {type(exc).__name__}: {exc}",
        task=task_name,
    )


def _with_injections(run: Any, call: CallItem, args: tuple, kwargs: dict) -> tuple:
    if call.task.injected:
        kwargs = {**kwargs, **injections(run, call.task.injected, kwargs)}
    return args, kwargs


def run_sync(call: CallItem, serializes: bool) -> None:
    """Run a sync call here and now, in the calling thread, and deliver its outcome.

    Task calls made inside it belong to a nested inline run, as in a worker.
    """
    run = call.run.nested(call)
    tokens = _context.enter(run)
    try:
        args, kwargs = _with_injections(run, call, *arguments(call, serializes))
        value = call.task.func(*args, **kwargs)
        run.wait_outstanding()
    except BaseException as exc:  # as in a worker: SystemExit & co. reach the caller
        call.deliver(False, exc)
    else:
        call.deliver(*outcome_of_value(call, value, serializes))
    finally:
        _context.leave(tokens)


def start_async(call: CallItem, serializes: bool) -> Any:
    """Start an async call on the run's event loop: a task if that loop runs this
    thread, else scheduled onto it from here (a sync body under ``ainvoke``)."""
    coroutine = _run_async(call, serializes)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and running is call.loop:
        return running.create_task(coroutine)
    return asyncio.run_coroutine_threadsafe(coroutine, call.loop)


async def _run_async(call: CallItem, serializes: bool) -> None:
    run = call.run.nested(call, asyncio.get_running_loop())
    _context.enter(run)  # in this asyncio task's own copy of the context
    progress = None
    if call.task.timeout is not None:  # progress: heartbeats and stream-writer events
        progress = Progress(call.task.timeout)
        run.heartbeat = progress.heartbeat
        run.writer = progress.wrap_writer(run.writer)
    try:
        args, kwargs = _with_injections(run, call, *arguments(call, serializes))
        running = call.task.func(*args, **kwargs)
        if progress is None:
            value = await running
        else:
            value = await watched(running, call.task.name, progress)
        await run.await_outstanding()
    except asyncio.CancelledError:
        call.deliver(False, CANCELLED)
        raise
    except (KeyboardInterrupt, SystemExit) as exc:
        call.deliver(False, exc)
        raise  # asyncio stops the loop on these: keep its behaviour
    except BaseException as exc:
        call.deliver(False, exc)
    else:
        call.deliver(*outcome_of_value(call, value, serializes))
