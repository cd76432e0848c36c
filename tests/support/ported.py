"""What the ported LangGraph tests share (``tests/*/test_langgraph_ported.py``).

Each ported test runs on LangGraph (which proves the port is faithful) and on paralleltask
(which proves it matches): ``ported()`` parametrizes the module's ``api`` fixture over the
implementations of :mod:`tests.support.impls`, and with ``durability`` over LangGraph's
durability modes too. Task calls run in other processes, so counters of task calls are
files (``bump``/``count``), not a task's ``nonlocal`` variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import paralleltask
from tests.support.impls import IMPLS, LANGGRAPH, PROCESS, Api

DURABILITIES = ("sync", "async", "exit")
#: LangGraph, and paralleltask on its default executor (the process pool).
ON_THE_POOL = (LANGGRAPH, PROCESS)


def ported(*, impls: tuple[str, ...] = IMPLS, durability: bool = False):
    """Run a test on ``impls`` (LangGraph and paralleltask's executors); with
    ``durability``, once per durability mode too (LangGraph's ``durability`` fixture)."""

    def decorate(test):
        test = pytest.mark.parametrize("api", impls, indirect=True)(test)
        if durability:
            test = pytest.mark.parametrize("durability", DURABILITIES)(test)
        return test

    return decorate


class AnyStr(str):
    """Equal to any str (LangGraph's ``tests.any_str.AnyStr``, without a prefix)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    __hash__ = str.__hash__


def bump(path: Path) -> None:
    """Count one event in a file: appends are atomic across processes."""
    with open(path, "a") as f:
        f.write("x\n")


def count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def cache_and_policy(api: Api) -> tuple:
    """A fresh in-memory cache and the CachePolicy class of ``api``."""
    if api.is_langgraph:
        from langgraph.cache.memory import InMemoryCache
        from langgraph.types import CachePolicy

        return InMemoryCache(), CachePolicy
    return paralleltask.MemoryStore(), paralleltask.CachePolicy


def in_memory_saver() -> Any:
    """LangGraph's own checkpointer, for the LangGraph StateGraphs these tests build."""
    memory = pytest.importorskip("langgraph.checkpoint.memory")
    return memory.InMemorySaver()
