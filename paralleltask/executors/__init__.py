"""Executors: where task calls run. One small protocol (``base.Executor``), several homes.

Each executor is imported on first use (PEP 562): the run imports the protocol
(``executors.base``) without loading the process pool, its worker, or Dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Executor
    from .dask import DaskExecutor
    from .inline import InlineExecutor
    from .process import ProcessExecutor
    from .thread import ThreadExecutor

__all__ = ["DaskExecutor", "Executor", "InlineExecutor", "ProcessExecutor", "ThreadExecutor"]

_HOMES = {
    "DaskExecutor": "dask",
    "Executor": "base",
    "InlineExecutor": "inline",
    "ProcessExecutor": "process",
    "ThreadExecutor": "thread",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
