"""``interrupt(value)``: pause the run for a human's answer, LangGraph's way.

Each task call (and the entrypoint body) has a :class:`~paralleltask._scratch.Scratch`:
the answers it has been given so far, in the order its ``interrupt()`` calls asked.
The n-th ``interrupt()`` of a call returns the n-th answer if there is one; otherwise
the call stops with :class:`GraphInterrupt`, the run ends, and
``invoke(Command(resume=...))`` runs it again with one more answer.
"""

from __future__ import annotations

from typing import Any

from . import _context
from ._scratch import NO_ANSWER
from .errors import GraphInterrupt
from .types import Interrupt


def interrupt(value: Any, *, response_schema: Any = None) -> Any:
    """Pause the run and surface ``value`` to the caller; once resumed with
    ``Command(resume=answer)``, return ``answer``. Works in the entrypoint body and in
    tasks (in a worker too); resuming needs a checkpointer and a ``thread_id``."""
    if response_schema is not None and not isinstance(response_schema, dict):
        raise NotImplementedError(
            "interrupt(response_schema=...) takes a JSON Schema dict here; validating "
            "answers against a type needs pydantic, which paralleltask does not use"
        )
    run = _context.current_run.get()
    if run is None:
        raise RuntimeError("Called get_config outside of a runnable context")
    scratch = run.scratch
    if scratch is None:  # a task called from a task: it has no slot of its own
        raise RuntimeError(
            "interrupt() was called in a task that another task called; paralleltask "
            "interrupts the entrypoint body and the tasks it calls directly"
        )
    index = scratch.asked
    scratch.asked += 1
    if index < len(scratch.answers):
        return scratch.answers[index]
    if scratch.taker is not None:
        answer = scratch.taker(scratch)
        if answer is not NO_ANSWER:
            return answer
    pause = Interrupt(value, scratch.interrupt_id(len(scratch.answers)))
    pause.response_schema = response_schema
    raise GraphInterrupt((pause,))
