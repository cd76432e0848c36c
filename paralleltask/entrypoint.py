"""``@entrypoint``: the run that task calls belong to; LangGraph's methods on it."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _context
from ._unsupported import refuse
from .executors.base import Executor
from .executors.inline import InlineExecutor
from .executors.process import default_executor
from .run import Run

R = TypeVar("R")
S = TypeVar("S")

#: Parameters LangGraph injects into an entrypoint body by name (besides the input).
INJECTABLE = ("config", "previous", "writer", "runtime", "store")
#: Of those, the ones a later issue brings (refused at decoration until then).
NOT_YET_INJECTABLE = ("runtime", "store")


def _no_op_writer(chunk: Any) -> None:
    """The stream writer of a run that streams nothing (``invoke``): drops the chunk."""


class entrypoint:
    """Make a function the entrypoint of a workflow, as ``langgraph.func.entrypoint``.

    The body runs in the caller's thread (``invoke``) or on the caller's event loop
    (``ainvoke``); its task calls run on ``executor`` (default: the process-wide
    :class:`ProcessExecutor`). Inside a worker process every run is inline.
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
    ) -> None:
        refuse(
            "entrypoint",
            checkpointer=checkpointer,
            store=store,
            cache=cache,
            context_schema=context_schema,
            cache_policy=cache_policy,
            retry_policy=retry_policy,
            timeout=timeout,
        )
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(
                "executor must be a paralleltask executor (ProcessExecutor, "
                f"ThreadExecutor, InlineExecutor), got {executor!r}"
            )
        self.executor = executor

    def __call__(self, func: Callable[..., Any]) -> Entrypoint:
        return Entrypoint(func, self.executor)

    @dataclass(frozen=True)
    class final(Generic[R, S]):
        """Return ``value`` to the caller and keep ``save`` as the next run's ``previous``."""

        value: R
        save: S


class Entrypoint:
    """A decorated entrypoint: ``invoke``/``ainvoke`` and LangGraph's other methods."""

    def __init__(self, func: Callable[..., Any], executor: Executor | None) -> None:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise NotImplementedError("Generators are not supported in the Functional API.")
        parameters = list(inspect.signature(func).parameters.values())
        if not parameters:
            raise ValueError("Entrypoint function must have at least one parameter")
        self.func = func
        self.name: str = getattr(func, "__name__", type(func).__name__)
        self.executor = executor
        self.is_async = inspect.iscoroutinefunction(func)
        self._injected = tuple(p.name for p in parameters[1:] if p.name in INJECTABLE)
        for name in self._injected:
            if name in NOT_YET_INJECTABLE:
                raise NotImplementedError(
                    f"Entrypoint {self.name!r} asks for the {name!r} parameter, which this "
                    "version of paralleltask does not inject yet (it arrives with runtime "
                    "context and the store). Remove the parameter, or keep this program on "
                    "langgraph.func until then."
                )
        functools.update_wrapper(self, func)

    # -- running ------------------------------------------------------------------

    def invoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        durability: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the body with ``input`` and return what it returns."""
        self._check_call(config, context, stream_mode, durability, kwargs)
        if self.is_async:
            raise TypeError(
                f'No synchronous function provided to "{self.name}".\n'
                "Either initialize with a synchronous function or invoke via the async "
                "API (ainvoke, astream, etc.)"
            )
        return self._run_sync(input, config)

    async def ainvoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: str = "values",
        durability: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the body with ``input`` on the caller's event loop; a sync body runs in a
        thread of the loop's default executor, as LangGraph runs it."""
        self._check_call(config, context, stream_mode, durability, kwargs)
        if not self.is_async:
            loop = asyncio.get_running_loop()
            ctx = contextvars.copy_context()
            return await loop.run_in_executor(
                None, functools.partial(ctx.run, self._run_sync, input, config, loop)
            )
        run = Run(self._executor(), asyncio.get_running_loop())
        token = _context.current_run.set(run)
        try:
            result = await self.func(input, **self._injections(config))
            await run.await_outstanding()
        except BaseException as exc:
            await self._end_failed_async(run, exc)
            raise
        finally:
            _context.current_run.reset(token)
        return _plucked(result)

    def _run_sync(
        self,
        input: Any,
        config: dict[str, Any] | None,
        caller_loop: asyncio.AbstractEventLoop | None = None,
    ) -> Any:
        run = Run(self._executor(), task_loop=caller_loop)
        token = _context.current_run.set(run)
        try:
            result = self.func(input, **self._injections(config))
            run.wait_outstanding()
        except BaseException as exc:
            self._end_failed_sync(run, exc)
            raise
        finally:
            _context.current_run.reset(token)
        return _plucked(result)

    @staticmethod
    def _end_failed_sync(run: Run, exc: BaseException) -> None:
        # LangGraph lets a failed body's task calls finish before it raises; Ctrl-C
        # (or any BaseException that is not an Exception) stops them instead.
        if isinstance(exc, Exception):
            try:
                run.wait_outstanding()
                return
            except BaseException:
                pass
        run.stop()

    @staticmethod
    async def _end_failed_async(run: Run, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            run.cancel_async_calls()
            try:
                await run.await_outstanding()
                return
            except BaseException:
                pass
        run.stop()

    def _executor(self) -> Executor:
        if _context.in_worker():
            return InlineExecutor()
        return self.executor or default_executor()

    def _injections(self, config: dict[str, Any] | None) -> dict[str, Any]:
        if not self._injected:
            return {}
        values = {"config": _run_config(config), "previous": None, "writer": _no_op_writer}
        return {name: values[name] for name in self._injected}

    def _check_call(self, config, context, stream_mode, durability, kwargs) -> None:
        refuse(f"{self.name}.invoke", context=context, durability=durability)
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict (a RunnableConfig), got {config!r}")
        if stream_mode != "values":
            raise NotImplementedError(
                f"invoke(stream_mode={stream_mode!r}) is not supported by this version of "
                "paralleltask: it arrives with streaming. Leave stream_mode unset."
            )
        if kwargs:
            raise TypeError(
                f"{self.name}.invoke() got unsupported keyword arguments: {sorted(kwargs)}"
            )

    # -- LangGraph's state methods, as LangGraph answers them without a checkpointer --

    def get_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> Any:
        raise ValueError("No checkpointer set")

    async def aget_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> Any:
        raise ValueError("No checkpointer set")

    def get_state_history(self, config: dict[str, Any], **kwargs: Any) -> Any:
        raise ValueError("No checkpointer set")

    async def aget_state_history(self, config: dict[str, Any], **kwargs: Any) -> Any:
        raise ValueError("No checkpointer set")

    def update_state(self, config: dict[str, Any], values: Any, as_node: Any = None) -> Any:
        raise ValueError("No checkpointer set")

    async def aupdate_state(self, config: dict[str, Any], values: Any, as_node: Any = None):
        raise ValueError("No checkpointer set")

    def clear_cache(self) -> None:
        raise ValueError("No cache is set for this graph. Cannot clear cache.")

    async def aclear_cache(self) -> None:
        raise ValueError("No cache is set for this graph. Cannot clear cache.")

    def stream(self, input: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "Entrypoint.stream() is not supported by this version of paralleltask: it "
            "arrives with streaming. Use invoke() meanwhile."
        )

    def astream(self, input: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "Entrypoint.astream() is not supported by this version of paralleltask: it "
            "arrives with streaming. Use ainvoke() meanwhile."
        )

    def __repr__(self) -> str:
        return f"<entrypoint {self.name!r}>"


def _plucked(result: Any) -> Any:
    return result.value if isinstance(result, entrypoint.final) else result


def _run_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The config a body sees: the caller's, with LangGraph's keys present."""
    merged = dict(config or {})
    merged["configurable"] = dict(merged.get("configurable") or {})
    merged["metadata"] = dict(merged.get("metadata") or {})
    merged.setdefault("callbacks", None)
    return merged
