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
import functools
import threading
from typing import Any

from .. import _serde
from .._execute import current, run_async_code, run_code
from .._protocol import NOT_LOADED, NOT_PICKLED, OK, RAISED
from .._run import Run
from .._stream import SendingSink
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
        arguments = _serde.loads(arguments_blob)  # (args, kwargs[, scratch])
    except Exception as exc:
        return NOT_LOADED, f"{type(exc).__name__}: {exc}"
    if task.is_async:
        return asyncio.run(_run_async(task, info, arguments, call_id, topic, attempt))
    run = _run_of(task, info, arguments, call_id, topic, attempt)
    with current(run):  # (an entrypoint invoked in it runs inline)
        try:
            value = run_code(run, task, arguments[0], arguments[1])
        except BaseException as exc:  # as in a pool worker: SystemExit & co. reach the caller
            return RAISED, _serde.dumps_exception(exc)
    return _outcome(value)


async def _run_async(task, info, arguments, call_id, topic, attempt) -> tuple[int, Any]:
    run = _run_of(task, info, arguments, call_id, topic, attempt, asyncio.get_running_loop())
    try:  # a timeout is enforced here: the parent cannot reach into Dask
        value = await run_async_code(run, task, arguments[0], arguments[1], keeps_clock=True)
    except BaseException as exc:
        return RAISED, _serde.dumps_exception(exc)
    return _outcome(value)


def _run_of(task, info, arguments, call_id: int, topic: str | None, attempt, loop=None) -> Run:
    """The run of the call's own code: inline, its chunks sent as events."""
    modes = info.worker_modes()
    sink = None
    if modes and topic:
        sink = SendingSink(modes, call_id, functools.partial(_send_chunk, topic))
    scratch = arguments[2] if len(arguments) > 2 else None
    run = Run(InlineExecutor(), loop, info=info, sink=sink, scratch=scratch)
    run.of_call(task.name, call_id, attempt)
    return run


def _send_chunk(topic: str, call_id: int, mode: str, blob: bytes) -> None:
    """A chunk to the client at once, as an event on the executor's topic."""
    from distributed import get_worker

    get_worker().log_event(topic, {"call": call_id, "mode": mode, "chunk": blob})


def _outcome(value: Any) -> tuple[int, Any]:
    try:
        return OK, _serde.dumps(value)
    except Exception as exc:
        return NOT_PICKLED, f"{type(value).__name__}|{type(exc).__name__}: {exc}"


def _load(key: tuple, blob: bytes) -> Any:
    with _kept_lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    loaded = _serde.loads(blob)
    with _kept_lock:
        _kept[key] = loaded
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return loaded
