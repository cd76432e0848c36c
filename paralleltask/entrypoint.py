"""``@entrypoint``: the run that task calls belong to; LangGraph's methods on it."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import copy
import dataclasses
import functools
import inspect
import os
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _context
from ._body_threads import run_body
from ._cache import as_cache_policy, entry_key, identity_prefix
from ._call import raised_by_a_task
from ._checkpoint import (
    BODY,
    Start,
    ThreadRun,
    as_command,
    check_durability,
    config_metadata,
    entry_task_id,
    seq_of,
    snapshot,
    snapshot_of,
    thread_id_of,
    update,
)
from ._compat import drop_inert_run_options, refuse_unknown, renamed
from ._inject import injected_parameters, injections
from ._retry import as_policies, retry_delay
from ._scratch import Scratch
from ._timeout import Progress, as_timeout_policy, sync_refused, watched
from ._unsupported import refuse
from .errors import EmptyInputError, GraphInterrupt, InvalidUpdateError
from .executors.base import Executor
from .executors.inline import InlineExecutor
from .executors.process import default_executor
from .run import Run, RunInfo
from .stores.base import MISS, Ledger, Store
from .stream import START_TRIGGERS, Sink, StreamSink, interrupt_dicts, normalize_modes
from .types import StateSnapshot, TimeoutPolicy

R = TypeVar("R")
S = TypeVar("S")

#: The id of an entrypoint's own task in debug/tasks chunks.
#: Namespace of the entrypoint task ids of runs without a checkpointer.
_RUN_TASK_IDS = uuid.UUID("5d0c6a52-8f0e-4b9e-9a43-3f7d2c1b6e10")


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
        bound._bound_config = _merged_config(self._bound_config, {**(config or {}), **kwargs})
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
        config, durability = self._check_call("invoke", config, durability, kwargs)
        self._refuse_sync_of_async()
        if stream_mode != "values":
            stream = self.stream(
                input,
                config,
                context=context,
                stream_mode=stream_mode,
                durability=durability,
                version=version,
            )
            return list(stream)
        _refuse_v2_values(version)
        info = self._info(config, context, ())
        ledger = Ledger()
        run = Run(
            self._executor(),
            info=info,
            cache=self.cache,
            thread=self._thread(info.config, durability, None, ledger),
            ledger=ledger,
        )
        return self._execute_sync(run, input)

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
        config, durability = self._check_call("ainvoke", config, durability, kwargs)
        if stream_mode != "values":
            stream = self.astream(
                input,
                config,
                context=context,
                stream_mode=stream_mode,
                durability=durability,
                version=version,
            )
            return [chunk async for chunk in stream]
        _refuse_v2_values(version)
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
        config, durability = self._check_call("stream", config, durability, kwargs)
        self._refuse_sync_of_async()
        modes, single = _stream_options(stream_mode, subgraphs, version)
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
        config, durability = self._check_call("astream", config, durability, kwargs)
        modes, single = _stream_options(stream_mode, subgraphs, version)
        return self._stream_async(input, config, context, modes, single, version, durability)

    # -- streaming ----------------------------------------------------------------

    def _stream_sync(
        self, input, config, context, modes, single, version, durability
    ) -> Iterator[Any]:
        info = self._info(config, context, modes)
        sink = StreamSink(modes)
        ledger = Ledger()
        run = Run(
            self._executor(),
            info=info,
            sink=sink,
            cache=self.cache,
            thread=self._thread(info.config, durability, sink, ledger),
            ledger=ledger,
        )
        outcome: list[BaseException] = []

        def body() -> None:
            try:
                self._execute_sync(run, input)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                sink.end()

        ran = run_body(functools.partial(contextvars.copy_context().run, body))
        try:
            yield from sink.chunks(single, version)
        except BaseException:  # Ctrl-C, or the consumer stopped iterating
            run.stop()
            raise
        finally:
            ran.result()
        if outcome:
            raise outcome[0]

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

    def _execute_sync(self, run: Run, input: Any) -> Any:
        """Run the body in this thread, with the entrypoint's retries; report its start
        and end to the run's sink (and, with a checkpointer, to the thread)."""
        start = self._begin(run, input)
        if not start.run_body:
            return start.value
        input = start.input
        if (hit := self._cached_run(run, input)) is not MISS:
            return hit
        tokens = _context.enter(run)
        try:
            entry_id = self._identify(run)
            _entry_started(run.sink, self.name, input, entry_id)
            failures = 0
            run.first_attempt_time = time.time()
            while True:
                run.attempt = failures + 1
                try:
                    result = self.func(input, **injections(run, self._injected, {}))
                    value = _entry_returned(run.sink, self.name, result, entry_id)
                    run.wait_outstanding()
                    break
                except BaseException as exc:
                    _end_failed_sync(run, exc)
                    if isinstance(exc, GraphInterrupt):
                        return self._paused(run, exc)
                    failures += 1
                    delay = retry_delay(self.retry_policies, exc, failures)
                    if delay is None:
                        self._raising(run, exc)
                        raise
                    time.sleep(delay)
                    self._retrying(run)
        finally:
            _context.leave(tokens)
        _entry_finished(run.sink, value)  # streamed before the loop checkpoint, as LangGraph
        self._keep_run(run, input, value, result)
        return value

    async def _execute_async(
        self, input: Any, info: RunInfo, sink: Sink | None, durability: str | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        ledger = Ledger()
        thread = self._thread(info.config, durability, sink, ledger)
        if not self.is_async:
            run = Run(
                self._executor(),
                task_loop=loop,
                info=info,
                sink=sink,
                cache=self.cache,
                thread=thread,
                ledger=ledger,
            )
            ctx = contextvars.copy_context()
            call = functools.partial(ctx.run, self._execute_sync, run, input)
            return await loop.run_in_executor(None, call)
        run = Run(
            self._executor(),
            loop,
            info=info,
            sink=sink,
            cache=self.cache,
            thread=thread,
            ledger=ledger,
        )
        start = self._begin(run, input)
        if not start.run_body:
            return start.value
        input = start.input
        if (hit := self._cached_run(run, input)) is not MISS:
            return hit
        tokens = _context.enter(run)
        try:
            entry_id = self._identify(run)
            _entry_started(sink, self.name, input, entry_id)
            failures = 0
            run.first_attempt_time = time.time()
            while True:
                run.attempt = failures + 1
                try:
                    result = await self._attempt(run, input)
                    value = _entry_returned(sink, self.name, result, entry_id)
                    await run.await_outstanding()
                    break
                except BaseException as exc:
                    await _end_failed_async(run, exc)
                    if isinstance(exc, GraphInterrupt):
                        return self._paused(run, exc)
                    failures += 1
                    delay = retry_delay(self.retry_policies, exc, failures)
                    if delay is None:
                        self._raising(run, exc)
                        raise
                    await asyncio.sleep(delay)
                    self._retrying(run)
        finally:
            _context.leave(tokens)
        _entry_finished(sink, value)  # streamed before the loop checkpoint, as LangGraph
        self._keep_run(run, input, value, result)
        return value

    async def _attempt(self, run: Run, input: Any) -> Any:
        """One attempt of an async body, watched when the entrypoint has a timeout."""
        if self.timeout is None:
            return await self.func(input, **injections(run, self._injected, {}))
        progress = Progress(self.timeout)
        run.heartbeat = progress.heartbeat
        run.writer = progress.wrap_writer(run.writer)
        body = self.func(input, **injections(run, self._injected, {}))
        return await watched(body, self.name, progress)

    # -- checkpoints and interrupts -------------------------------------------------

    def _thread(self, config: dict, durability: str | None, sink: Sink | None, ledger: Ledger):
        """The run's checkpoints on its thread, or None without a checkpointer."""
        if self.checkpointer is None:
            if durability is not None:  # as LangGraph warns
                warnings.warn(
                    "`durability` has no effect when no checkpointer is present.", stacklevel=3
                )
            return None
        durability = check_durability(durability)
        thread_id = thread_id_of(config)
        checkpoint_id = (config.get("configurable") or {}).get("checkpoint_id")
        if checkpoint_id and not self._is_latest(thread_id, checkpoint_id):
            raise NotImplementedError(
                "invoke() from a given checkpoint_id (time travel) is not supported: "
                "paralleltask resumes a thread from its latest checkpoint; leave "
                "checkpoint_id out of the config (or give the latest one's)"
            )
        metadata = config_metadata(config)
        return ThreadRun(
            self.checkpointer, thread_id, self.name, durability, sink, metadata, ledger
        )

    def _is_latest(self, thread_id: str, checkpoint_id: str) -> bool:
        """``checkpoint_id`` is the thread's latest (a state's config, say): no travel."""
        latest = self.checkpointer.checkpoint_get(thread_id)
        return latest is not None and latest["checkpoint_id"] == checkpoint_id

    def _identify(self, run: Run) -> str:
        """The entrypoint's own task id, kept in the run's info with the run's checkpoint
        id before any task call carries the info to a worker (``execution_info``)."""
        info = run.info
        info.entry_task_id = entry_id = self._entry_id(run)
        record = run.thread.record if run.thread is not None else None
        info.checkpoint_id = record["checkpoint_id"] if record else str(uuid.uuid4())
        return entry_id

    def _entry_id(self, run: Run) -> str:
        """The id of the entrypoint's own task in this run: with a checkpointer, the one
        its checkpoint and ``get_state`` show (kept when the run resumes), as LangGraph."""
        if run.thread is not None and run.thread.record:
            return entry_task_id(run.thread.record, self.name)
        return str(uuid.uuid5(_RUN_TASK_IDS, f"{os.getpid()}|{run.info.run_id}|{self.name}"))

    def _begin(self, run: Run, input: Any) -> Start:
        """Where the run starts: its thread decides (fresh, resumed, or nothing to do)."""
        thread = run.thread
        if thread is None:
            if input is None:  # nothing to resume without checkpoints: as LangGraph
                raise EmptyInputError("Received no input for __start__")
            if as_command(input) is not None:
                raise RuntimeError("Cannot use Command(resume=...) without checkpointer")
            run.scratch = Scratch(f"run|{run.info.run_id}")
            return Start(True, input)
        start = thread.begin(input)
        run.info.previous = thread.previous
        run.scratch = thread.scratch(BODY)
        return start

    def _retrying(self, run: Run) -> None:
        """The body runs again: its calls are numbered afresh, and those that finished
        in the failed attempt are replayed (as LangGraph replays their writes)."""
        if run.thread is not None:
            run.thread.restart()
        run.scratch.asked = 0

    def _paused(self, run: Run, exc: GraphInterrupt) -> dict[str, list]:
        """The run stopped at ``interrupt()``: LangGraph's ``{"__interrupt__": [...]}``."""
        if run.thread is None:
            interrupts = list(exc.interrupts)
        else:
            from_calls = {i.id for i in run.thread.interrupts}
            by_body = tuple(i for i in exc.interrupts if i.id not in from_calls)
            interrupts = run.thread.paused(by_body)
        if run.sink is not None:
            paused = {"__interrupt__": tuple(interrupts)}  # one dict, as LangGraph's
            run.sink.emit("updates", paused)
            run.sink.emit("values", paused)
            pauses = interrupt_dicts(interrupts)
            run.sink.task_finished(run.info.entry_task_id, self.name, None, {}, pauses)
        self._flush_cache()
        paused = {"__interrupt__": interrupts}
        run.ledger.raise_lost(paused)  # a resume needs what was not stored
        return paused

    def _run_key(self, input: Any) -> bytes | None:
        if self.cache is None or self.cache_policy is None:
            return None
        return entry_key(identity_prefix(self.func, self.name), self.cache_policy, (input,), {})

    def _cached_run(self, run: Run, input: Any) -> Any:
        """With ``cache_policy`` and a cache: the run's value for this input, or MISS."""
        key = self._run_key(input)
        value = MISS if key is None else self.cache.cache_get(key)
        if value is not MISS and run.sink is not None:
            run.sink.emit("updates", {self.name: value, "__metadata__": {"cached": True}})
            run.sink.emit("values", value)
        return value

    def _keep_run(self, run: Run, input: Any, value: Any, result: Any) -> None:
        """The run ended well: checkpoint it, cache its value (with ``cache_policy``),
        and make sure all is stored before the caller sees the result."""
        if run.thread is not None:
            save = result.save if isinstance(result, entrypoint.final) else value
            run.thread.finished(value, save)
        key = self._run_key(input)
        if key is not None:
            watch = run.ledger.watch(("cache", self.name))
            self.cache.cache_put(key, value, self.cache_policy.ttl, None, watch)
        self._flush_cache()
        # Never a warning alone: a put of this run that failed (any durability; a cache
        # entry too) fails the invoke once all is flushed, the value attached.
        run.ledger.raise_lost(value)

    def _flush_cache(self) -> None:
        if self.cache is not None:
            self.cache.flush()

    def _raising(self, run: Run, exc: BaseException) -> None:
        if run.thread is not None:
            if _is_a_failure(exc):
                run.thread.failed(exc)
            else:  # Ctrl-C: what finished is kept, the stopped calls are not errors
                run.thread.close()
        self._flush_cache()
        lost = run.ledger.error(None)
        if lost is not None and hasattr(exc, "add_note"):  # the body's error stays the error
            exc.add_note(f"Also, paralleltask's StoreError: {lost}")
        if isinstance(exc, Exception):
            if hasattr(exc, "add_note"):  # as LangGraph notes it
                note = f"During task with name '{self.name}' and id '{run.info.entry_task_id}'"
                exc.add_note(note)
            if run.sink is not None:
                run.sink.task_finished(run.info.entry_task_id, self.name, exc, {})

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
            config=_run_config(config, self.name),
            context=_coerced_context(self.context_schema, context),
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

    def _check_call(self, method, config, durability, kwargs) -> tuple[Any, str | None]:
        """Refuse what the call cannot mean; the call's config (over the one bound by
        :meth:`with_config`) and durability (LangGraph's deprecated ``checkpoint_during=``
        still names one)."""
        checkpoint_during = kwargs.pop("checkpoint_during", None)
        if checkpoint_during is not None:
            warnings.warn(
                "`checkpoint_during` is deprecated and will be removed. Please use "
                "`durability` instead.",
                DeprecationWarning,
                stacklevel=3,
            )
            if durability is not None:
                raise ValueError(
                    "Cannot use both `checkpoint_during` and `durability` parameters. "
                    "Please use `durability` instead."
                )
            durability = "async" if checkpoint_during else "exit"
        check_durability(durability)
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a dict (a RunnableConfig), got {config!r}")
        if self._bound_config is not None:
            config = _merged_config(self._bound_config, config)
        limit = (config or {}).get("recursion_limit")
        if limit is not None and limit < 1:  # (a str fails this comparison: TypeError)
            raise ValueError("recursion_limit must be at least 1")
        drop_inert_run_options(f"{self.name}.{method}", kwargs)
        if kwargs:
            raise TypeError(
                f"{self.name}.{method}() got unsupported keyword arguments: {sorted(kwargs)}"
            )
        return config, durability

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
        configs = _batch_configs(inputs, config)
        if not inputs:
            return []

        def one(pair: tuple[Any, Any]) -> Any:
            try:
                return self.invoke(pair[0], pair[1], **kwargs)
            except Exception as exc:
                if return_exceptions:
                    return exc
                raise

        most = (configs[0] or {}).get("max_concurrency") or min(32, len(inputs))
        with cf.ThreadPoolExecutor(most, thread_name_prefix=f"paralleltask-{self.name}") as runs:
            return list(runs.map(one, zip(inputs, configs, strict=True)))

    async def abatch(
        self,
        inputs: list[Any],
        config: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """``ainvoke`` each input concurrently on the caller's loop (see :meth:`batch`)."""
        configs = _batch_configs(inputs, config)
        most = (configs[0] or {}).get("max_concurrency") if configs else None
        gate = asyncio.Semaphore(most) if most else None

        async def one(input: Any, config: Any) -> Any:
            if gate is None:
                return await self.ainvoke(input, config, **kwargs)
            async with gate:
                return await self.ainvoke(input, config, **kwargs)

        runs = [one(input, config) for input, config in zip(inputs, configs, strict=True)]
        return await asyncio.gather(*runs, return_exceptions=return_exceptions)

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
        store = self._checkpoints()
        thread_id = thread_id_of(config, reading=True)
        if config["configurable"].get("checkpoint_ns"):
            return  # an entrypoint's checkpoints are all in the root namespace
        only_id = config["configurable"].get("checkpoint_id")
        before_id = ((before or {}).get("configurable") or {}).get("checkpoint_id")
        before_seq = seq_of(before_id) if before_id else None
        count = 0
        for record in store.checkpoint_history(thread_id):
            if limit is not None and count >= limit:
                return
            if before_seq is not None and record["seq"] >= before_seq:
                continue
            if only_id and record["checkpoint_id"] != only_id:
                continue
            state = snapshot_of(store, record, self.name)
            if filter and any(state.metadata.get(k) != v for k, v in filter.items()):
                continue
            count += 1
            yield state

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
        store = self._checkpoints()
        if as_node is not None and as_node != self.name:
            raise InvalidUpdateError(f"Node {as_node} does not exist")
        thread_id = thread_id_of(config, reading=True)
        checkpoint_id = config["configurable"].get("checkpoint_id")
        return update(store, thread_id, values, config_metadata(config), checkpoint_id)

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


def _is_a_failure(exc: BaseException) -> bool:
    """An error of the run's code (an Exception, or SystemExit & co. raised by a
    task); not a Ctrl-C, which stops the run where it is."""
    return isinstance(exc, Exception) or raised_by_a_task(exc)


def _end_failed_sync(run: Run, exc: BaseException) -> None:
    # LangGraph lets a failed body's task calls finish before it raises; Ctrl-C
    # (a KeyboardInterrupt, or a SystemExit, not raised by a task) stops them instead.
    if _is_a_failure(exc):
        try:
            run.wait_outstanding()
            return
        except BaseException:
            pass
    run.stop()


async def _end_failed_async(run: Run, exc: BaseException) -> None:
    # An async body's async tasks are cancelled, its sync tasks finish (LangGraph).
    if isinstance(exc, Exception):
        run.cancel_async_calls()
        try:
            await run.await_outstanding()
            return
        except BaseException:
            pass
    run.stop()


def _entry_started(sink: Sink | None, name: str, input: Any, entry_id: str) -> None:
    if sink is not None:
        sink.task_started(entry_id, name, input, START_TRIGGERS)


def _entry_returned(sink: Sink | None, name: str, result: Any, entry_id: str) -> Any:
    """The body returned: the value for the caller, and the entrypoint's own chunks,
    streamed at once (calls still running stream theirs after), as LangGraph's."""
    value = result.value if isinstance(result, entrypoint.final) else result
    if sink is not None:
        sink.emit("updates", {name: value})
        sink.task_finished(entry_id, name, None, {"__end__": value})
    return value


def _entry_finished(sink: Sink | None, value: Any) -> None:
    """Every call has finished: the run's ``values`` chunk."""
    if sink is not None:
        sink.emit("values", value)


def _merged_config(base: dict | None, extra: dict | None) -> dict | None:
    """``extra`` over ``base``, as LangGraph merges configs: ``configurable`` and
    ``metadata`` key by key, ``tags`` appended (each once), any other key replaced."""
    if not base:
        return extra
    if extra is None:
        return dict(base)
    merged = {**base, **extra}
    for key in ("configurable", "metadata"):
        if key in base or key in extra:
            merged[key] = {**(base.get(key) or {}), **(extra.get(key) or {})}
    if "tags" in base or "tags" in extra:
        tags = list(base.get("tags") or [])
        merged["tags"] = tags + [tag for tag in extra.get("tags") or [] if tag not in tags]
    return merged


def _batch_configs(inputs: list, config: Any) -> list:
    if isinstance(config, list):
        if len(config) != len(inputs):
            raise ValueError(
                "config must be a list of the same length as inputs, but got "
                f"{len(config)} configs for {len(inputs)} inputs"
            )
        return config
    return [config] * len(inputs)


def _coerced_context(schema: Any, context: Any) -> Any:
    """LangGraph's rule: a dict context becomes ``context_schema`` when that is a
    dataclass or a pydantic model; anything else is passed as it is."""
    if context is None or schema is None or not isinstance(context, dict):
        return context
    pydantic = sys.modules.get("pydantic")  # loaded already if the schema is a model
    is_model = pydantic is not None and isinstance(schema, type)
    if dataclasses.is_dataclass(schema) or (is_model and issubclass(schema, pydantic.BaseModel)):
        return schema(**context)
    return context


def _refuse_v2_values(version: str) -> None:
    _check_version(version)
    if version == "v2":
        raise NotImplementedError(
            "invoke(version='v2') with stream_mode='values' returns LangGraph's GraphOutput, "
            "which paralleltask does not have; use version='v1' or another stream_mode"
        )


def _stream_options(stream_mode: Any, subgraphs: bool, version: str) -> tuple[tuple, bool]:
    if subgraphs:
        raise NotImplementedError(
            "stream(subgraphs=True) is not supported: paralleltask streams the chunks of "
            "nested runs in the parent run's stream, without namespaces"
        )
    _check_version(version)
    return normalize_modes("updates" if stream_mode is None else stream_mode)


def _check_version(version: str) -> None:
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")


#: A RunnableConfig's own keys; LangGraph moves any other top-level key into
#: ``configurable`` (so ``{"thread_id": ...}`` at the top level names the thread).
CONFIG_KEYS = frozenset(
    {
        "tags",
        "metadata",
        "callbacks",
        "run_name",
        "max_concurrency",
        "recursion_limit",
        "configurable",
        "run_id",
    }
)

#: ``configurable`` keys LangGraph copies into the run's ``metadata``.
PROPAGATED_TO_METADATA = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "run_id",
    "graph_id",
    "assistant_id",
)


def _run_config(config: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The config a run's code sees: the caller's, with LangGraph's keys present."""
    config = config or {}
    merged = {key: value for key, value in config.items() if key in CONFIG_KEYS}
    merged["configurable"] = dict(merged.get("configurable") or {})
    for key, value in config.items():
        if key not in CONFIG_KEYS and value is not None:
            merged["configurable"][key] = value
    metadata = dict(merged.get("metadata") or {})
    for key in PROPAGATED_TO_METADATA:  # as LangGraph's ensure_config copies them
        value = merged["configurable"].get(key)
        if value and key not in metadata:
            metadata[key] = value
    merged["metadata"] = {**metadata, "langgraph_node": name}
    merged.setdefault("callbacks", None)
    return merged
