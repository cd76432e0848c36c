"""What runs inside a Dask worker: one task call, as a pool worker runs it.

The parent submits :func:`run_call` with the task and its run pickled once (cached here
by the submitting executor's token, so two clients' ids never collide) and the call's
arguments. It returns ``(status, blob)`` with the pool's statuses, so an exception keeps
its type, message and worker-side traceback however Dask would have carried it. Stream
chunks go back while the call runs as Dask events on the executor's topic.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

from .. import _context, serde
from .._inject import injections
from .._protocol import NOT_LOADED, NOT_PICKLED, OK, RAISED
from .._timeout import Progress, watched
from ..stream import Sink
from .inline import InlineExecutor

#: Functions and runs kept unpickled per worker process (the most recent ones).
KEPT = 256

_kept: collections.OrderedDict = collections.OrderedDict()
_kept_lock = threading.Lock()


def run_call(
    token: str,
    task_id: int,
    task_blob: bytes,
    run_id: int,
    run_blob: bytes,
    arguments_blob: bytes,
    call_id: int,
    topic: str | None,
    attempt: tuple[int, float],
) -> tuple[int, Any]:
    """Run one call in this Dask worker; ``(status, blob)`` as a pool worker's DONE."""
    try:
        task = _load((token, "task", task_id), task_blob)
        info = _load((token, "run", run_id), run_blob)
        arguments = serde.loads(arguments_blob)  # (args, kwargs[, scratch])
    except Exception as exc:
        return NOT_LOADED, f"{type(exc).__name__}: {exc}"
    if task.is_async:
        return asyncio.run(_run_async(task, info, arguments, call_id, topic, attempt))
    run = _run_of(info, arguments, call_id, topic)
    run.of_call(task.name, call_id, attempt)  # (an entrypoint invoked in it runs inline)
    args, kwargs = arguments[0], arguments[1]
    tokens = _context.enter(run)
    try:
        if task.injected:
            kwargs.update(injections(run, task.injected, kwargs))
        value = task.func(*args, **kwargs)
        run.wait_outstanding()
    except BaseException as exc:  # as in a pool worker: SystemExit & co. reach the caller
        return RAISED, serde.dumps_exception(exc)
    finally:
        _context.leave(tokens)
    return _outcome(value)


async def _run_async(task, info, arguments, call_id, topic, attempt) -> tuple[int, Any]:
    run = _run_of(info, arguments, call_id, topic, asyncio.get_running_loop())
    run.of_call(task.name, call_id, attempt)
    _context.enter(run)  # this asyncio.run's own context
    progress = None
    if task.timeout is not None:  # enforced here: the parent cannot reach into Dask
        progress = Progress(task.timeout)
        run.heartbeat = progress.heartbeat
        run.writer = progress.wrap_writer(run.writer)
    args, kwargs = arguments[0], arguments[1]
    try:
        if task.injected:
            kwargs.update(injections(run, task.injected, kwargs))
        running = task.func(*args, **kwargs)
        value = await (running if progress is None else watched(running, task.name, progress))
        await run.await_outstanding()
    except BaseException as exc:
        return RAISED, serde.dumps_exception(exc)
    return _outcome(value)


def _run_of(info, arguments, call_id: int, topic: str | None, loop=None):
    """The nested run of the call's own code: inline, its chunks sent as events."""
    from ..run import Run

    modes = info.worker_modes()
    sink = _EventSink(modes, topic, call_id) if modes and topic else None
    scratch = arguments[2] if len(arguments) > 2 else None
    return Run(InlineExecutor(), loop, info=info, sink=sink, scratch=scratch)


def _outcome(value: Any) -> tuple[int, Any]:
    try:
        return OK, serde.dumps(value)
    except Exception as exc:
        return NOT_PICKLED, f"{type(value).__name__}|{type(exc).__name__}: {exc}"


def _load(key: tuple, blob: bytes) -> Any:
    with _kept_lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    loaded = serde.loads(blob)
    with _kept_lock:
        _kept[key] = loaded
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return loaded


class _EventSink(Sink):
    """A Dask worker's sink: each chunk goes to the client at once, as an event."""

    def __init__(self, modes: frozenset[str], topic: str, call_id: int) -> None:
        super().__init__(modes)
        self._topic = topic
        self._call_id = call_id

    def emit(self, mode: str, chunk: Any) -> None:
        if mode in self.modes:
            from distributed import get_worker

            event = {"call": self._call_id, "mode": mode, "chunk": serde.dumps(chunk)}
            get_worker().log_event(self._topic, event)
