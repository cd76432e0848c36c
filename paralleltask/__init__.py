"""paralleltask: LangGraph's functional API (``@task``, ``@entrypoint``) for CPU-bound work.

A task call is cloudpickled and runs in a warm pool of worker processes, so
pure-Python work uses every core; futures bring the results back into the
entrypoint's thread or event loop. A program written for ``langgraph.func`` runs
unchanged after ``from paralleltask import task, entrypoint``.
"""

from ._interrupt import interrupt
from ._shared import shared
from .config import get_config, get_runtime, get_stream_writer
from .entrypoint import Entrypoint, entrypoint
from .errors import (
    SerializationError,
    StoreError,
    TaskError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from .executors import DaskExecutor, Executor, InlineExecutor, ProcessExecutor, ThreadExecutor
from .stores import LMDBStore, MemoryStore
from .task import TaskFunction, task
from .types import (
    CachePolicy,
    Command,
    ExecutionInfo,
    Interrupt,
    RetryPolicy,
    Runtime,
    ServerInfo,
    StateSnapshot,
    TimeoutPolicy,
    default_cache_key,
    default_retry_on,
)

__version__ = "0.1.0"

__all__ = [
    "CachePolicy",
    "Command",
    "DaskExecutor",
    "Entrypoint",
    "ExecutionInfo",
    "Executor",
    "InlineExecutor",
    "Interrupt",
    "LMDBStore",
    "MemoryStore",
    "ProcessExecutor",
    "RetryPolicy",
    "Runtime",
    "SerializationError",
    "ServerInfo",
    "StateSnapshot",
    "StoreError",
    "TaskError",
    "TaskFunction",
    "TaskTimeoutError",
    "ThreadExecutor",
    "TimeoutPolicy",
    "WorkerCrashedError",
    "default_cache_key",
    "default_retry_on",
    "entrypoint",
    "get_config",
    "get_runtime",
    "get_stream_writer",
    "interrupt",
    "shared",
    "task",
]
