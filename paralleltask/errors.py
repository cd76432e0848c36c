"""The errors paralleltask raises on its own account.

All derive from :class:`TaskError`, itself a plain :class:`Exception`: neither a
``RuntimeError`` nor an ``OSError``, because LangGraph's ``default_retry_on`` treats
those two as final and a crashed worker or a timeout is worth a retry.
"""

from __future__ import annotations

__all__ = [
    "SerializationError",
    "StoreError",
    "TaskError",
    "TaskTimeoutError",
    "WorkerCrashedError",
]


class TaskError(Exception):
    """A task call failed for a reason of paralleltask's, not of the task's code."""


class SerializationError(TaskError):
    """A task's function, argument, result or exception would not cross a process boundary.

    ``task`` names the task; ``argument`` names the argument (``"0"`` for the first
    positional one, the keyword's name for a keyword one) or is ``None`` when the
    culprit was not an argument.
    """

    def __init__(self, message: str, *, task: str | None = None, argument: str | None = None):
        super().__init__(message)
        self.task = task
        self.argument = argument

    def __reduce__(self):
        return _rebuild_serialization_error, (self.args[0], self.task, self.argument)


def _rebuild_serialization_error(message, task, argument):
    return SerializationError(message, task=task, argument=argument)


class WorkerCrashedError(TaskError):
    """The worker process running the call died (segfault, ``os._exit``, killed for memory).

    ``exitcode`` is the process's exit code, negative for a signal, as in
    :attr:`multiprocessing.Process.exitcode`.
    """

    def __init__(self, message: str, *, task: str | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.task = task
        self.exitcode = exitcode

    def __reduce__(self):
        return _rebuild_worker_crashed_error, (self.args[0], self.task, self.exitcode)


def _rebuild_worker_crashed_error(message, task, exitcode):
    return WorkerCrashedError(message, task=task, exitcode=exitcode)


class TaskTimeoutError(TaskError):
    """A task call ran past its timeout.

    Same constructor and fields as LangGraph's ``NodeTimeoutError`` (``node``,
    ``timeout``, ``run_timeout``, ``idle_timeout``, ``elapsed``, ``kind``) and, like it,
    not a ``TimeoutError``/``OSError``, so the default retry policy retries it.
    """

    def __init__(
        self,
        node: str,
        elapsed: float,
        *,
        kind: str,
        idle_timeout: float | None = None,
        run_timeout: float | None = None,
    ) -> None:
        if kind == "idle":
            if idle_timeout is None:
                raise ValueError("idle_timeout is required when kind='idle'")
            message = (
                f"Node '{node}' exceeded its idle timeout of {idle_timeout:.3f}s "
                f"without making progress (elapsed: {elapsed:.3f}s)."
            )
            self.timeout = idle_timeout
        elif kind == "run":
            if run_timeout is None:
                raise ValueError("run_timeout is required when kind='run'")
            message = (
                f"Node '{node}' exceeded its run timeout of {run_timeout:.3f}s "
                f"(elapsed: {elapsed:.3f}s)."
            )
            self.timeout = run_timeout
        else:
            raise ValueError("kind must be 'idle' or 'run'")
        super().__init__(message)
        self.node = node
        self.elapsed = elapsed
        self.kind = kind
        self.idle_timeout = idle_timeout
        self.run_timeout = run_timeout

    def __reduce__(self):
        return _rebuild_timeout_error, (
            self.node,
            self.elapsed,
            self.kind,
            self.idle_timeout,
            self.run_timeout,
        )


def _rebuild_timeout_error(node, elapsed, kind, idle_timeout, run_timeout):
    return TaskTimeoutError(
        node, elapsed, kind=kind, idle_timeout=idle_timeout, run_timeout=run_timeout
    )


class StoreError(Exception):
    """A store could not read or write: ``path`` names the store, the message says what
    failed and why (the OS or LMDB error is also its ``__cause__``).

    Not a :class:`TaskError`: the task's code ran and its value exists; what failed is
    keeping it. ``value`` holds that value where one was computed but not stored (a
    failed commit under ``durability="async"`` or ``"exit"``), else ``None``.
    """

    def __init__(self, message: str, *, path: str | None = None, value: object = None):
        super().__init__(message)
        self.path = path
        self.value = value

    def __reduce__(self):
        return _rebuild_store_error, (self.args[0], self.path, self.value)


def _rebuild_store_error(message, path, value):
    return StoreError(message, path=path, value=value)


class GraphInterrupt(Exception):
    """Raised by ``interrupt()`` to pause the run (LangGraph's name): never retried,
    never recorded as an error; ``args[0]`` holds the :class:`Interrupt` values."""

    def __init__(self, interrupts: tuple = ()) -> None:
        super().__init__(tuple(interrupts))

    @property
    def interrupts(self) -> tuple:
        return self.args[0] if self.args else ()


class InvalidUpdateError(Exception):
    """``update_state(as_node=...)`` names no node of the entrypoint (LangGraph's name)."""


class EmptyInputError(Exception):
    """``invoke(None)`` on a thread that has nothing to resume (LangGraph's name)."""


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; set as ``__cause__`` of the re-raised error.

    Formatting the chain then shows where in the task's own code the error happened,
    as :mod:`concurrent.futures.process` does.
    """

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb
