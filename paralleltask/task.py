"""``@task``: a function whose calls run on the run's executor and return futures."""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import sys
import types
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from . import _context, _serde
from ._cache import as_cache_policy, identity_prefix
from ._compat import refuse_unknown, renamed
from ._inject import injected_parameters
from ._retry import as_policies
from ._timeout import as_timeout_policy
from .stores.base import Store
from .types import TimeoutPolicy

P = ParamSpec("P")
T = TypeVar("T")

_task_ids = itertools.count(1)

OUTSIDE_RUN_MESSAGE = (
    "Called get_config outside of a runnable context: task {name!r} can only be "
    "called inside an @entrypoint (or inside another task)"
)


class TaskFunction(Generic[P, T]):
    """A task: calling it inside an entrypoint schedules the call and returns a future.

    The function is pickled once (on its first call) and each worker receives it once;
    later calls send only their arguments.
    """

    def __init__(
        self,
        func: Callable[P, T],
        *,
        name: str | None = None,
        retry_policies: tuple = (),
        cache_policy: Any = None,
        timeout: TimeoutPolicy | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"@task needs a function, got {func!r}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"@task cannot decorate generator function {_name_of(func)!r}: a generator "
                "cannot cross a process boundary. Return a list instead, or send progress "
                "with get_stream_writer()."
            )
        self.func = func
        self.name: str = name or _name_of(func)
        self.is_async = _is_async_callable(func)
        self.retry_policies = retry_policies
        self.cache_policy = cache_policy
        self.timeout = timeout
        self.injected = injected_parameters(func)
        self._cache_prefix: bytes | None = None
        self.task_id = next(_task_ids)
        self._pickled: bytes | None = None
        functools.update_wrapper(self, func)
        if name is not None:
            self.__name__ = name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        run = _context.current_run.get()
        if run is None:
            raise RuntimeError(OUTSIDE_RUN_MESSAGE.format(name=self.name))
        return run.call(self, args, kwargs)

    def cache_prefix(self) -> bytes:
        """The first 16 bytes of this task's cache keys (identity and code)."""
        if self._cache_prefix is None:
            self._cache_prefix = identity_prefix(self.func, self.name)
        return self._cache_prefix

    def clear_cache(self, cache: Store) -> None:
        """Drop this task's entries from ``cache``, as LangGraph's ``clear_cache``."""
        if self.cache_policy is not None:
            cache.cache_clear([self.cache_prefix()])

    async def aclear_cache(self, cache: Store) -> None:
        self.clear_cache(cache)

    def pickled(self) -> bytes:
        """The task pickled for a worker: by reference when importable, else by value."""
        if self._pickled is None:
            self._pickled = _serde.dumps(self)
        return self._pickled

    def __reduce__(self):
        location = _importable_location(self)
        if location is not None:
            return _import_task, location
        func = self.func
        return _rebuild_task, (
            self.func,
            self.name,
            self.retry_policies,
            self.cache_policy,
            self.timeout,
            func.__code__.co_filename if isinstance(func, types.FunctionType) else None,
        )

    def __repr__(self) -> str:
        return f"<task {self.name!r} of {self.func!r}>"


def _import_task(module_name: str, qualname: str) -> TaskFunction:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _rebuild_task(
    func, name, retry_policies, cache_policy, timeout=None, filename=None
) -> TaskFunction:
    if filename is not None and func.__code__.co_filename != filename:
        # cloudpickle (3.1.3 on) sends code by value as "<dynamic-code>": give it back its
        # file, so a worker's traceback shows the task's source lines.
        func.__code__ = _with_filename(func.__code__, filename)
    return TaskFunction(
        func, name=name, retry_policies=retry_policies, cache_policy=cache_policy, timeout=timeout
    )


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code nested in it (inner functions, comprehensions) from ``filename``."""
    consts = tuple(
        _with_filename(const, filename) if isinstance(const, types.CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _importable_location(task: TaskFunction) -> tuple[str, str] | None:
    """``(module, qualname)`` if a worker can import this very task, else None."""
    module_name = getattr(task.func, "__module__", None)
    qualname = getattr(task.func, "__qualname__", None)
    if module_name in (None, "__main__", "__mp_main__") or not qualname or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (module_name, qualname) if obj is task else None


def _name_of(func: Callable) -> str:
    # LangGraph's order: the function's name, a partial's function's, the class's.
    name = getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", None)
    return name or type(func).__name__


def _is_async_callable(func: Callable) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


@overload
def task(func: Callable[P, Awaitable[T]], /) -> TaskFunction[P, Awaitable[T]]: ...
@overload
def task(func: Callable[P, T], /) -> TaskFunction[P, T]: ...
@overload
def task(
    func: None = None,
    /,
    *,
    name: str | None = None,
    retry_policy: Any = None,
    cache_policy: Any = None,
    timeout: Any = None,
) -> Callable[[Callable[P, T]], TaskFunction[P, T]]: ...


def task(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry_policy: Any = None,
    cache_policy: Any = None,
    timeout: Any = None,
    **deprecated: Any,
) -> Any:
    """Make ``func`` a task, as ``langgraph.func.task`` does: bare (``@task``) or
    called (``@task(name=...)``), for sync and async functions.

    ``retry_policy`` (a :class:`RetryPolicy` or a sequence, the first matching one
    wins) is decided in the parent: a call in backoff holds no worker. ``timeout``
    (seconds, ``timedelta`` or :class:`TimeoutPolicy`) holds for sync tasks too on the
    process pool: a sync call past it is stopped by killing its worker.

    A call inside an entrypoint returns a future (``concurrent.futures.Future`` in a
    sync entrypoint, ``asyncio.Future`` in an async one) and runs on the entrypoint's
    executor, by default a warm pool of worker processes. (LangGraph's deprecated
    ``retry=`` still names the retry policy.)
    """
    retry_policy = renamed(deprecated, "retry", "retry_policy", retry_policy)
    refuse_unknown("task", deprecated)
    timeout_policy = as_timeout_policy(timeout)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {name!r}")
    retry_policies = as_policies(retry_policy, "task")
    policy = as_cache_policy(cache_policy, "task")

    def decorate(f: Callable[..., Any]) -> TaskFunction:
        return TaskFunction(
            f,
            name=name,
            retry_policies=retry_policies,
            cache_policy=policy,
            timeout=timeout_policy,
        )

    return decorate if func is None else decorate(func)
