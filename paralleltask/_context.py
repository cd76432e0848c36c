"""Where the running code is: which run it belongs to, and whether it is in a worker.

Entering a run also shows it to LangGraph's own ``get_config``/``get_stream_writer``/
``get_runtime`` when the program imported LangGraph (a half-migrated program): they
then work on paralleltask's run, and LangGraph functions that need LangGraph's engine
(``interrupt``, a ``langgraph.func`` task) fail with the import to change.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from ._call import number_calls_from

if TYPE_CHECKING:
    from ._run import Run

current_run: ContextVar[Run | None] = ContextVar("paralleltask_run", default=None)

_in_worker = False

#: LangGraph's config keys that only its engine provides, and the function needing each.
_LANGGRAPH_ONLY = {
    "__pregel_scratchpad": "interrupt",
    "__pregel_call": "task",
    "__pregel_send": "Send",
    "__pregel_checkpointer": "the checkpointer",
    "__pregel_store": "get_store",
}


def mark_worker_process() -> None:
    """Called once at worker start: from then on, nested runs stay inline, and call ids
    made here cannot collide with the parent's (they name tasks in stream chunks)."""
    global _in_worker
    _in_worker = True
    number_calls_from((os.getpid() << 40) + 1)


def in_worker() -> bool:
    """True inside a paralleltask worker process."""
    return _in_worker


def enter(run: Run) -> tuple[Token, Any, Any]:
    """Make ``run`` the current run (in this context); undo with :func:`leave`."""
    token = current_run.set(run)
    langchain_config = sys.modules.get("langchain_core.runnables.config")
    if langchain_config is None:
        return token, None, None
    var = langchain_config.var_child_runnable_config
    return token, var, var.set(_langgraph_view(run))


def leave(tokens: tuple[Token, Any, Any]) -> None:
    token, var, langgraph_token = tokens
    if var is not None:
        var.reset(langgraph_token)
    current_run.reset(token)


class _LangGraphConfigurable(dict):
    """The run's ``configurable`` as LangGraph's functions read it."""

    def __missing__(self, key: str) -> Any:
        if not (isinstance(key, str) and key.startswith("__pregel_")):
            raise KeyError(key)
        what = _LANGGRAPH_ONLY.get(key, "this LangGraph function")
        raise RuntimeError(
            f"LangGraph's {what} was called inside a paralleltask run, where LangGraph's "
            f"engine is not running (missing {key!r}). Import it from paralleltask instead "
            f"of langgraph (see the import table in paralleltask's README)."
        )


def _langgraph_view(run: Run) -> dict[str, Any]:
    config = run.config()
    configurable = _LangGraphConfigurable(config.get("configurable") or {})
    configurable["__pregel_runtime"] = run.runtime()
    return {**config, "configurable": configurable}
