"""The implementations differential tests run on: LangGraph, and paralleltask on each
executor; one ``Api`` to write a program once against any of them."""

from __future__ import annotations

from typing import Any

import pytest

import paralleltask
from paralleltask import InlineExecutor, ThreadExecutor

LANGGRAPH = "langgraph"
PROCESS = "paralleltask-process"
THREAD = "paralleltask-thread"
INLINE = "paralleltask-inline"
PARALLELTASK = (PROCESS, THREAD, INLINE)
IMPLS = (LANGGRAPH, *PARALLELTASK)

#: One long-lived handle each: a run must not start a thread pool per test.
EXECUTORS: dict[str, Any] = {
    PROCESS: None,  # the default, process-wide pool
    THREAD: ThreadExecutor(max_workers=4),
    INLINE: InlineExecutor(),
}


class Api:
    """One implementation of the functional API, as a test program sees it."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        if impl == LANGGRAPH:
            import langgraph.config
            import langgraph.func
            import langgraph.runtime
            import langgraph.types

            self.module: Any = langgraph.func
            self.RetryPolicy = langgraph.types.RetryPolicy
            self.get_stream_writer = langgraph.config.get_stream_writer
            self.get_runtime = langgraph.runtime.get_runtime
            self.interrupt = langgraph.types.interrupt
            self.Command = langgraph.types.Command
            self.Interrupt = langgraph.types.Interrupt
        else:
            self.module = paralleltask
            self.RetryPolicy = paralleltask.RetryPolicy
            self.get_stream_writer = paralleltask.get_stream_writer
            self.get_runtime = paralleltask.get_runtime
            self.interrupt = paralleltask.interrupt
            self.Command = paralleltask.Command
            self.Interrupt = paralleltask.Interrupt
        self.task = self.module.task
        self.final = self.module.entrypoint.final
        self._twins: dict[Any, Any] = {}

    @property
    def is_langgraph(self) -> bool:
        return self.impl == LANGGRAPH

    def entrypoint(self, **kwargs: Any) -> Any:
        """``entrypoint(...)``, on this implementation's executor."""
        if not self.is_langgraph and EXECUTORS[self.impl] is not None:
            kwargs["executor"] = EXECUTORS[self.impl]
        return self.module.entrypoint(**kwargs)

    def checkpointer(self) -> Any:
        """A fresh in-memory checkpointer: LangGraph's InMemorySaver, or a MemoryStore."""
        if self.is_langgraph:
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        return paralleltask.MemoryStore()

    def shared(self, pt_task: Any) -> Any:
        """A module-level paralleltask task, for this implementation: itself, or for
        LangGraph a LangGraph task made from the same function."""
        if not self.is_langgraph:
            return pt_task
        if pt_task not in self._twins:
            self._twins[pt_task] = self.module.task(pt_task.func, name=pt_task.name)
        return self._twins[pt_task]


def make_api(impl: str) -> Api:
    """``Api(impl)``, skipping the test when LangGraph is not installed."""
    if impl == LANGGRAPH:
        pytest.importorskip("langgraph.func")
    return Api(impl)


def xfail_on(request, api: Api, impls, reason: str) -> None:
    """Mark this run an expected (strict) failure when it runs on one of ``impls``."""
    if api.impl in impls:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
