"""Where the running code is: which run it belongs to, and whether it is in a worker."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

current_run: ContextVar[Run | None] = ContextVar("paralleltask_run", default=None)

_in_worker = False


def mark_worker_process() -> None:
    """Called once at worker start: from then on, nested runs stay inline."""
    global _in_worker
    _in_worker = True


def in_worker() -> bool:
    """True inside a paralleltask worker process."""
    return _in_worker
