"""paralleltask: LangGraph's functional API (``@task``, ``@entrypoint``) for CPU-bound work.

A task call is cloudpickled and runs in a warm pool of worker processes, so
pure-Python work uses every core; futures bring the results back into the
entrypoint's thread or event loop. A program written for ``langgraph.func`` runs
unchanged after ``from paralleltask import task, entrypoint``.
"""

from .entrypoint import Entrypoint, entrypoint
from .errors import SerializationError, TaskError, TaskTimeoutError, WorkerCrashedError
from .executors import Executor, InlineExecutor, ProcessExecutor, ThreadExecutor
from .task import TaskFunction, task

__version__ = "0.1.0"

__all__ = [
    "Entrypoint",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "SerializationError",
    "TaskError",
    "TaskFunction",
    "TaskTimeoutError",
    "ThreadExecutor",
    "WorkerCrashedError",
    "entrypoint",
    "task",
]
