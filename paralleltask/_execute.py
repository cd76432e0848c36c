"""Running one call's code in this process: the one place that does it.

The inline and thread executors (in the parent), the pool's worker and the Dask worker
all run a task's code through :func:`run_code` or :func:`run_async_code`: the call's own
run entered as the current one, the parameters LangGraph injects filled in, the function
called, and the task calls it made awaited before it counts as returned. They differ only
in where the outcome goes (``call.deliver`` here; a message up the pipe in a worker; a
Dask result) and in who keeps a timeout's clock (here, or the parent of a worker).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import _context, _serde
from ._inject import injections
from ._run import Run
from ._timeout import Progress, watched
from .executors.base import CANCELLED, Call, CalledTask, Executor

#: Told whether the task's function returned (True) or raised (False), before its nested
#: calls are awaited: a worker uses it to end a child process a task forked.
Returned = Callable[[bool], None]


class current:
    """``with current(run):`` makes ``run`` the current run for the block: code in it
    (and a done-callback its delivery runs) sees that run (``get_config()``, nested task
    calls, an entrypoint invoked there runs inline)."""

    __slots__ = ("run", "tokens")

    def __init__(self, run: Run) -> None:
        self.run = run

    def __enter__(self) -> None:
        self.tokens = _context.enter(self.run)

    def __exit__(self, *exc_info: object) -> None:
        _context.leave(self.tokens)


def run_code(
    run: Run, task: CalledTask, args: tuple, kwargs: dict, returned: Returned | None = None
) -> Any:
    """Run a sync task's code as the code of ``run`` (made current by the caller, with
    :class:`current`, so that what it delivers is delivered inside); its value, or it
    raises what the code raised."""
    if task.injected:
        kwargs = _injected(run, task, kwargs)
    if returned is None:
        value = task.func(*args, **kwargs)
    else:
        try:
            value = task.func(*args, **kwargs)
        except BaseException:
            returned(False)
            raise
        returned(True)
    run.wait_outstanding()
    return value


async def run_async_code(
    run: Run,
    task: CalledTask,
    args: tuple,
    kwargs: dict,
    *,
    keeps_clock: bool,
    returned: Returned | None = None,
) -> Any:
    """Run an async task's code as the code of ``run``, in the running asyncio task.

    ``keeps_clock``: a timeout is enforced here (heartbeats and stream-writer events
    count as progress), not by a parent that watches this process.
    """
    _context.enter(run)  # in this asyncio task's own copy of the context: no leave
    progress = None
    if keeps_clock and task.timeout is not None:
        progress = Progress(task.timeout)
        run.heartbeat = progress.heartbeat
        run.writer = progress.wrap_writer(run.writer)
    if task.injected:
        kwargs = _injected(run, task, kwargs)
    running = task.func(*args, **kwargs)
    if progress is not None:
        running = watched(running, task.name, progress)
    if returned is None:
        value = await running
    else:
        try:
            value = await running
        except BaseException:
            returned(False)
            raise
        returned(True)
    await run.await_outstanding()
    return value


def _injected(run: Run, task: CalledTask, kwargs: dict) -> dict:
    """``kwargs`` with the parameters LangGraph injects (a new dict: the caller's may
    be live, on executors that do not serialize)."""
    return {**kwargs, **injections(run, task.injected, kwargs)}


# -- the local executors: a call of this process's run, delivered here -----------------


def arguments(call: Call, serializes: bool) -> tuple[tuple, dict]:
    """The call's ``(args, kwargs)``: fresh copies when the executor serializes."""
    loaded = _serde.loads(call.payload) if serializes else call.payload
    return loaded[0], loaded[1]


def outcome_of_value(call: Call, value: Any, serializes: bool) -> tuple[bool, Any]:
    """``(True, value)``, copied through the wire format when the executor serializes."""
    if not serializes:
        return True, value
    try:
        return True, _serde.copy_value(value)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        return False, _serde.result_error(call.task.name, type(value).__name__, detail)


def run_sync(call: Call, serializes: bool, inner: Executor) -> None:
    """Run a sync call here and now, in the calling thread, and deliver its outcome.

    Task calls made inside it run on ``inner`` (inline), as in a worker.
    """
    run = call.run.nested(call, inner)
    with current(run):  # a done-callback of the future runs inside the call's run
        try:
            value = run_code(run, call.task, *arguments(call, serializes))
        except BaseException as exc:  # as in a worker: SystemExit & co. reach the caller
            call.deliver(False, exc)
        else:
            call.deliver(*outcome_of_value(call, value, serializes))


def start_async(call: Call, serializes: bool, inner: Executor) -> Any:
    """Start an async call on the run's event loop: a task if that loop runs this
    thread, else scheduled onto it from here (a sync body under ``ainvoke``)."""
    coroutine = _run_async(call, serializes, inner)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and running is call.loop:
        return running.create_task(coroutine)
    return asyncio.run_coroutine_threadsafe(coroutine, call.loop)


async def _run_async(call: Call, serializes: bool, inner: Executor) -> None:
    run = call.run.nested(call, inner, asyncio.get_running_loop())
    try:
        args, kwargs = arguments(call, serializes)
        value = await run_async_code(run, call.task, args, kwargs, keeps_clock=True)
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
