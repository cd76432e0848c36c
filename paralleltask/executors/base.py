"""The executor protocol: what an executor does with the calls a run hands it, and what
a call offers it in return. An executor needs nothing else (``docs/executors.md``).

An executor runs each :class:`Call` somewhere and reports back exactly once through
``call.deliver(ok, value[, result_bytes])``, from any thread. It moves calls and their
outcomes; the run decides what an outcome means (``paralleltask/_call.py``). This module
imports nothing of the run, so the run and every executor can depend on it.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
from collections.abc import Callable
from typing import Any, Protocol

from .._retry import call_later
from ..types import TimeoutPolicy

#: Delivered as the exception of a call that was cancelled after it started.
CANCELLED = cf.CancelledError("the task call was cancelled")


class CalledTask(Protocol):
    """What an executor (and a call's outcome) reads of the task being called
    (``paralleltask.task.TaskFunction`` is one)."""

    name: str
    task_id: int  # unique in this process: workers keep each function once by it
    is_async: bool
    func: Callable[..., Any]
    injected: Any  # the parameters the run fills in (config, writer, ...), if any
    timeout: TimeoutPolicy | None
    retry_policies: Any
    cache_policy: Any

    def cache_prefix(self) -> bytes: ...

    def pickled(self) -> bytes: ...


class Call(Protocol):
    """What a task call offers the executor running it (``_call.CallItem`` is one).

    ``payload`` is ``(args, kwargs[, scratch])`` pickled once at the call site when the
    executor :attr:`~Executor.serializes`, else live. ``claim()`` marks the call running
    (False: it was cancelled first, deliver ``CANCELLED``); ``deliver`` reports its
    outcome once; ``resolve`` fails it without the run's steps (an executor shut down).
    """

    call_id: int
    payload: Any
    loop: asyncio.AbstractEventLoop | None  # where an async task runs in this process
    in_backoff: bool

    @property
    def task(self) -> CalledTask: ...

    @property
    def run(self) -> Any: ...  # the call's run: ``run.info`` travels with the call

    @property
    def future(self) -> Any: ...

    def claim(self) -> bool: ...

    def attempt(self) -> tuple[int, float]: ...

    def deliver(self, ok: bool, value: Any, result_bytes: bytes | None = None) -> None: ...

    def resolve(self, ok: bool, value: Any) -> None: ...


class Executor(abc.ABC):
    """Runs task calls. Subclasses: process pool, threads, inline, Dask."""

    #: Whether calls reach this executor as pickled bytes (``payload``) or as live
    #: ``(args, kwargs)``. Pickling at the call site makes a bad argument fail there.
    serializes = True

    #: Whether a sync task's code can be stopped from outside (a process can be killed).
    can_stop_sync_code = False

    #: Whether a cancelled async call reports back (``deliver``) once it has stopped
    #: running, so that its run can wait for that, as LangGraph waits for its tasks.
    reports_cancellation = False

    #: Buffers of at least this many bytes in a call's arguments are pickled out of band
    #: (``_buffers.py``): ``payload`` is then an ``OutOfBand``. None: all in the pickle.
    buffer_threshold: int | None = None

    @abc.abstractmethod
    def submit(self, call: Call) -> None:
        """Run ``call`` and report through ``call.deliver`` exactly once."""

    def cancel(self, call: Call) -> None:  # noqa: B027 - optional hook
        """The caller cancelled ``call``: drop it if queued, stop it if it is async."""

    def stop(self, calls: list[Call]) -> None:
        """Stop ``calls`` now, running or not (Ctrl-C); their futures are cancelled."""
        for call in calls:
            call.future.cancel()

    def retry_later(self, call: Call, delay: float) -> None:
        """Submit ``call`` again after ``delay`` seconds, holding no thread meanwhile."""
        call_later(delay, lambda: self._resubmit(call))

    def _resubmit(self, call: Call) -> None:
        call.in_backoff = False
        if not call.claim():  # cancelled or stopped during the backoff: say so
            call.deliver(False, CANCELLED)
            return
        try:
            self.submit(call)
        except Exception as exc:  # the executor was shut down meanwhile
            call.resolve(False, exc)

    def start(self) -> Executor:
        """Make the executor ready ahead of the first call; returns ``self``."""
        return self

    def shutdown(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Release the executor's resources; a later call starts them again."""

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)
