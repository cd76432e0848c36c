"""``@entrypoint``: the run that task calls belong to; LangGraph's methods on it.

Thin methods over the modules that do the work: ``_run_config`` checks and merges the
call's config, ``_body`` drives the body with its retries, ``_checkpoint`` keeps the
run's checkpoints, ``_state`` reads and updates a thread's state.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _context
from ._batch import abatch, batch
from ._body import run_async, run_sync
from ._body_threads import stream_beside
from ._cache import as_cache_policy, identity_prefix
from ._checkpoint import open_thread
from ._compat import refuse, refuse_unknown, renamed
from ._inject import injected_parameters
from ._retry import as_policies
from ._run import Run, RunInfo
from ._run_config import (
    check_call,
    coerced_context,
    merged_config,
    refuse_v2_values,
    run_config,
    stream_options,
)
from ._state import history, snapshot, update_state
from ._stream import Sink, StreamSink
from ._timeout import as_timeout_policy, sync_refused
from .executors.base import Executor
from .executors.inline import InlineExecutor
from .executors.process import default_executor
from .stores.base import Ledger, Store
from .types import StateSnapshot, TimeoutPolicy

R = TypeVar("R")
S = TypeVar("S")


class entrypoint:
    """Make a function the entrypoint of a workflow, as ``langgraph.func.entrypoint``.

    The body runs in the caller's thread (``invoke``) or on the caller's event loop
    (``ainvoke``); its task calls run on ``executor`` (default: the process-wide
    :class:`ProcessExecutor`). Inside a worker process every run is inline.
    ``retry_policy`` applies to the body and to its tasks that have none of their own.
    """

    def __init__(
        self,
        checkpointer: Any = None,
        store: Any = None,
        cache: Any = None,
        context_schema: Any = None,
        cache_policy: Any = None,
        retry_policy: Any = None,
        timeout: Any = None,
        executor: Executor | None = None,
        **deprecated: Any,
    ) -> None:
        context_schema = renamed(deprecated, "config_schema", "context_schema", context_schema)
        retry_policy = renamed(deprecated, "retry", "retry_policy", retry_policy)
        refuse_unknown("entrypoint", deprecated)
        refuse("entrypoint", store=store)
        self.timeout = as_timeout_policy(timeout)
        for role, value in (("checkpointer", checkpointer), ("cache", cache)):
            if value is not None and not isinstance(value, Store):
                raise TypeError(
                    f"entrypoint({role}=...) takes a paralleltask store (LMDBStore or "
                    f"MemoryStore), got {value!r}"
                )
        self.checkpointer = checkpointer
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(
                "executor must be a paralleltask executor (ProcessExecutor, "
                f"ThreadExecutor, InlineExecutor), got {executor!r}"
            )
        self.executor = executor
        self.context_schema = context_schema
        self.retry_policies = as_policies(retry_policy, "entrypoint")
        self.cache = cache
        self.cache_policy = as_cache_policy(cache_policy, "entrypoint")

    def __call__(self, func: Callable[..., Any]) -> Entrypoint:
        return Entrypoint(
            func,
            self.executor,
            self.retry_policies,
            self.context_schema,
            self.cache,
            self.cache_policy,
            self.checkpointer,
            self.timeout,
        )

    @dataclass(frozen=True, kw_only=True)
    class final(Generic[R, S]):
        """Return ``value`` to the caller and keep ``save`` as the next run's ``previous``."""

        value: R
        save: S


class Entrypoint:
    """A decorated entrypoint: ``invoke``/``ainvoke``, ``stream``/``astream`` and
    LangGraph's other methods."""

    _final = entrypoint.final  # what the body driver (_body) unwraps from a body's return

    def __init__(
        self,
        func: Callable[..., Any],
        executor: Executor | None,
        retry_policies: tuple = (),
        context_schema: Any = None,
        cache: Store | None = None,
        cache_policy: Any = None,
        checkpointer: Store | None = None,
        timeout: TimeoutPolicy | None = None,
    ) -> None:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise NotImplementedError("Generators are not supported in the Functional API.")
        parameters = list(inspect.signature(func).parameters.values())
        if not parameters:
            raise ValueError("Entrypoint function must have at least one parameter")
        self.func = func
        self.name: str = getattr(func, "__name__", type(func).__name__)
        self.executor = executor
        self.retry_policies = retry_policies
        self.context_schema = context_schema
        self.cache = cache
        self.cache_policy = cache_policy
        self.checkpointer = checkpointer
        self.is_async = inspect.iscoroutinefunction(func)
        if timeout is not None and not self.is_async:  # the body runs in the caller's thread
            raise sync_refused(self.name, "Node", "An entrypoint body runs in the caller")
        self.timeout = timeout
        self._injected = injected_parameters(func, skip_first=True)
        self._bound_config: dict[str, Any] | None = None  # see with_config()
        functools.update_wrapper(self, func)

    def with_config(self, config: dict[str, Any] | None = None, **kwargs: Any) -> Entrypoint:
        """A copy whose runs start from ``config`` (``kwargs`` are config keys too), each
        call's own config merged over it, as LangGraph's ``with_config``."""
        bound = copy.copy(self)
        bound._bound_config = merged_config(self._bound_config, {**(config or {}), **kwargs})
        return bound

    # -- public: running ----------------------------------------------------------

    def invoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = "values",
        durability: str | None = None,
        version: str = "v1",
        **kwargs: Any,
    ) -> Any:
        """Run the body with ``input`` and return what it returns; with another
        ``stream_mode`` than ``"values"``, the list of chunks ``stream()`` would yield."""
        config, durability = check_call(
            f"{self.name}.invoke", self._bound_config, config, durability, kwargs
        )
        self._refuse_sync_of_async()
        if stream_mode != "values":
            options = _options(context, stream_mode, durability, version)
            return list(self.stream(input, config, **options))
        refuse_v2_values(version)
        run = self._sync_run(self._info(config, context, ()), None, durability)
        return run_sync(self, run, input)

    async def ainvoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = "values",
        durability: str | None = None,
        version: str = "v1",
        **kwargs: Any,
    ) -> Any:
        """Run the body with ``input`` on the caller's event loop; a sync body runs in a
        thread of the loop's default executor, as LangGraph runs it."""
        config, durability = check_call(
            f"{self.name}.ainvoke", self._bound_config, config, durability, kwargs
        )
        if stream_mode != "values":
            options = _options(context, stream_mode, durability, version)
            return [chunk async for chunk in self.astream(input, config, **options)]
        refuse_v2_values(version)
        info = self._info(config, context, ())
        return await self._execute_async(input, info, None, durability)

    def stream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = None,
        durability: str | None = None,
        subgraphs: bool = False,
        version: str = "v1",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Yield the run's chunks as they happen (``"updates"`` by default), in
        LangGraph's shapes; the body runs in a thread of its own meanwhile."""
        config, durability = check_call(
            f"{self.name}.stream", self._bound_config, config, durability, kwargs
        )
        self._refuse_sync_of_async()
        modes, single = stream_options(stream_mode, subgraphs, version)
        return self._stream_sync(input, config, context, modes, single, version, durability)

    def astream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = None,
        durability: str | None = None,
        subgraphs: bool = False,
        version: str = "v1",
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """Yield the run's chunks as they happen, on the caller's event loop."""
        config, durability = check_call(
            f"{self.name}.astream", self._bound_config, config, durability, kwargs
        )
        modes, single = stream_options(stream_mode, subgraphs, version)
        return self._stream_async(input, config, context, modes, single, version, durability)

    # -- streaming ----------------------------------------------------------------

    def _stream_sync(
        self, input, config, context, modes, single, version, durability
    ) -> Iterator[Any]:
        info = self._info(config, context, modes)
        sink = StreamSink(modes)
        run = self._sync_run(info, sink, durability)
        body = functools.partial(run_sync, self, run, input)
        # (yield from: closing this generator closes that one, which stops the run)
        yield from stream_beside(body, sink, run.stop, single, version)

    async def _stream_async(self, input, config, context, modes, single, version, durability):
        sink = StreamSink(modes, asyncio.get_running_loop())
        info = self._info(config, context, modes)
        body = asyncio.ensure_future(self._execute_async(input, info, sink, durability))
        body.add_done_callback(lambda _: sink.end())
        try:
            async for chunk in sink.achunks(single, version):
                yield chunk
        finally:
            if not body.done():
                body.cancel()
                await asyncio.gather(body, return_exceptions=True)
        body.result()  # raises what the body raised

    # -- running the body -----------------------------------------------------------

    async def _execute_async(
        self, input: Any, info: RunInfo, sink: Sink | None, durability: str | None
    ) -> Any:
        """The run of ``ainvoke``/``astream``: an async body on the caller's loop; a sync
        one in a thread of the loop's default executor, as LangGraph runs it."""
        loop = asyncio.get_running_loop()
        ledger = Ledger()
        thread = open_thread(self.checkpointer, info.config, self.name, durability, sink, ledger)
        run = Run(
            self._executor(),
            loop if self.is_async else None,  # a sync body's run is not on the loop...
            task_loop=loop,  # ... but its async task calls are
            info=info,
            sink=sink,
            cache=self.cache,
            checkpoints=thread,
            ledger=ledger,
        )
        if self.is_async:
            return await run_async(self, run, input)
        call = functools.partial(contextvars.copy_context().run, run_sync, self, run, input)
        return await loop.run_in_executor(None, call)

    def _sync_run(self, info: RunInfo, sink: Sink | None, durability: str | None) -> Run:
        """The run of ``invoke``/``stream``: a sync body's, run in a thread (the caller's,
        or for ``stream`` a kept one), its task calls' futures ``cf.Future``."""
        executor = self._executor()
        ledger = Ledger()
        thread = open_thread(
            self.checkpointer, info.config, self.name, durability, sink, ledger, stacklevel=4
        )
        return Run(
            executor, info=info, sink=sink, cache=self.cache, checkpoints=thread, ledger=ledger
        )

    def _executor(self) -> Executor:
        """Where the run's calls go: inline when invoked inside a task (in a worker, or
        in a thread of a pool whose threads may all be waiting on such runs)."""
        if _context.in_worker():
            return InlineExecutor()
        current = _context.current_run.get()
        if current is not None and current.task_name is not None:
            return InlineExecutor()
        return self.executor or default_executor()

    def _info(self, config: dict[str, Any] | None, context: Any, modes: tuple) -> RunInfo:
        return RunInfo(
            name=self.name,
            config=run_config(config, self.name),
            context=coerced_context(self.context_schema, context),
            modes=modes,
            retry_policies=self.retry_policies,
            has_cache=self.cache is not None,
            checkpointed=self.checkpointer is not None,
        )

    def _refuse_sync_of_async(self) -> None:
        if self.is_async:
            raise TypeError(
                f'No synchronous function provided to "{self.name}".\n'
                "Either initialize with a synchronous function or invoke via the async "
                "API (ainvoke, astream, etc.)"
            )

    # -- many inputs (LangChain's Runnable.batch, which LangGraph's entrypoints have) --

    def batch(
        self,
        inputs: list[Any],
        config: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``invoke`` each input, runs side by side (their task calls share the pool),
        results in input order. With ``return_exceptions`` a failed run gives its
        exception in its place; else the first failure is raised. ``config``: one for
        all, or one per input; its ``max_concurrency`` caps the runs at once."""
        invoke = functools.partial(self.invoke, **kwargs)
        return batch(invoke, inputs, config, return_exceptions, f"paralleltask-{self.name}")

    async def abatch(
        self,
        inputs: list[Any],
        config: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``ainvoke`` each input concurrently on the caller's loop (see :meth:`batch`)."""
        ainvoke = functools.partial(self.ainvoke, **kwargs)
        return await abatch(ainvoke, inputs, config, return_exceptions)

    # -- LangGraph's state methods --------------------------------------------------

    def _checkpoints(self) -> Store:
        if self.checkpointer is None:
            raise ValueError("No checkpointer set")
        return self.checkpointer

    def get_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> StateSnapshot:
        """The thread's latest state (or the config's ``checkpoint_id``'s)."""
        return snapshot(self._checkpoints(), config, self.name)

    async def aget_state(self, config: dict[str, Any], *, subgraphs: bool = False):
        return await asyncio.to_thread(self.get_state, config, subgraphs=subgraphs)

    def get_state_history(
        self,
        config: dict[str, Any],
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[StateSnapshot]:
        """The thread's states, newest first (only the config's ``checkpoint_id``'s, if
        it names one; none in a ``checkpoint_ns`` other than the root's, as LangGraph)."""
        yield from history(self._checkpoints(), config, self.name, filter, before, limit)

    async def aget_state_history(self, config: dict[str, Any], **kwargs: Any):
        for state in await asyncio.to_thread(
            lambda: list(self.get_state_history(config, **kwargs))
        ):
            yield state

    def update_state(
        self,
        config: dict[str, Any],
        values: Any,
        as_node: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Make ``values`` the thread's state, and the next run's ``previous`` (from the
        config's ``checkpoint_id``, if older than the latest: a fork). ``as_node`` may
        only name this entrypoint; ``task_id`` names no task here (LangGraph's argument,
        for graphs whose nodes write in several tasks)."""
        return update_state(self._checkpoints(), config, self.name, values, as_node)

    async def aupdate_state(
        self,
        config: dict[str, Any],
        values: Any,
        as_node: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.update_state, config, values, as_node, task_id)

    def clear_cache(self) -> None:
        """Drop the entrypoint's own cached runs (tasks' entries: ``task.clear_cache``)."""
        if self.cache is None:
            raise ValueError("No cache is set for this graph. Cannot clear cache.")
        self.cache.cache_clear([identity_prefix(self.func, self.name)])

    async def aclear_cache(self) -> None:
        self.clear_cache()

    def __repr__(self) -> str:
        return f"<entrypoint {self.name!r}>"


def _options(context: Any, stream_mode: Any, durability: str | None, version: str) -> dict:
    """``invoke``'s options, for the ``stream`` it becomes in another ``stream_mode``."""
    return {
        "context": context,
        "stream_mode": stream_mode,
        "durability": durability,
        "version": version,
    }
