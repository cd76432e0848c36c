"""``get_config()``, ``get_stream_writer()``, ``get_runtime()``: the current run's, from
the entrypoint body or from a task, in the parent or in a worker process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _context
from .types import Runtime, StreamWriter

if TYPE_CHECKING:
    from ._run import Run

OUTSIDE_MESSAGE = "Called get_config outside of a runnable context"


def _current() -> Run:
    run = _context.current_run.get()
    if run is None:
        raise RuntimeError(OUTSIDE_MESSAGE)
    return run


def get_config() -> dict[str, Any]:
    """The run's config: the caller's, with LangGraph's keys (``configurable``,
    ``metadata``, ``callbacks``)."""
    return _current().config()


def get_stream_writer() -> StreamWriter:
    """A callable that sends a chunk to the run's ``"custom"`` stream, while the task
    runs (from a worker too); a no-op when the run does not stream custom chunks."""
    return _current().writer


def get_runtime() -> Runtime:
    """The run's :class:`Runtime`: ``context``, ``stream_writer``, ``previous``..."""
    return _current().runtime()
