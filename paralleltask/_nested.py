"""A task called inside a running task keeps its own cache entry and checkpoint slot.

The outer call's code runs where that call runs: in a worker, or in this process
(thread and inline executors). Its nested calls run inline there, but what they may
reuse lives with the run in the parent: so a nested run gets stand-ins for the run's
cache and checkpoints. In the parent they are the real ones; in a worker they ask the
parent over the worker's pipe (a question and its answer; a result to keep, no answer).

Nested calls are numbered in call order under the outer call's slot (LangGraph numbers
them under the outer task's id), so a re-run outer call replays the nested calls that
had finished.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Protocol

from . import _serde
from .stores.base import MISS

if TYPE_CHECKING:
    from ._scratch import Scratch

_SLOT = struct.Struct(">I")


class SlotBackend(Protocol):
    """Where nested slots are read and written: the run's ThreadCheckpoints, or the parent."""

    def lookup(self, slot: bytes, name: str) -> Any: ...

    def keep(self, slot: bytes, name: str, blob: bytes) -> None: ...


class NestedSlots:
    """The checkpoint slots of the calls made inside one call (whose slot is ``prefix``),
    with the interface :class:`Run` uses on a ThreadCheckpoints."""

    __slots__ = ("_backend", "_calls", "_prefix")

    def __init__(self, backend: SlotBackend, prefix: bytes) -> None:
        self._backend = backend
        self._prefix = prefix
        self._calls = 0

    def next_slot(self) -> bytes:
        self._calls += 1
        return self._prefix + _SLOT.pack(self._calls)

    def replayed(self, slot: bytes, name: str) -> Any:
        return self._backend.lookup(slot, name)

    def scratch(self, slot: bytes) -> Scratch | None:
        return None  # interrupt() is for the body and the calls it makes itself

    def keep_outcome(self, slot, name, ok, value, pickled, on_commit) -> bool:
        if ok:
            self._backend.keep(slot, name, pickled if pickled is not None else _serde.dumps(value))
        return False

    def nested(self, slot: bytes) -> NestedSlots:
        return NestedSlots(self._backend, slot)


class AskingCache:
    """A worker's stand-in for the run's cache: each read is a question to the parent,
    each put a message to it (the parent stores it, as for any other call)."""

    def __init__(self, ask: Any, tell: Any) -> None:
        self._ask, self._tell = ask, tell

    def cache_get(self, key: bytes) -> Any:
        found, blob = self._ask("cache_get", key)
        return _serde.loads(blob) if found else MISS

    def cache_put(self, key: bytes, value: Any, ttl: Any, pickled: bytes | None = None) -> None:
        self._tell("cache_put", (key, ttl, pickled if pickled is not None else _serde.dumps(value)))

    def flush(self) -> None:
        """The parent flushes at the end of the run."""


class AskingSlots:
    """A worker's :class:`SlotBackend`: slots are relative to the outer call's own."""

    def __init__(self, ask: Any, tell: Any) -> None:
        self._ask, self._tell = ask, tell

    def lookup(self, slot: bytes, name: str) -> Any:
        found, blob = self._ask("replay", (slot, name))
        return _serde.loads(blob) if found else MISS

    def keep(self, slot: bytes, name: str, blob: bytes) -> None:
        self._tell("outcome", (slot, name, blob))


def answer(call: Any, question: str, payload: Any) -> tuple[bool, bytes | None]:
    """The parent's answer to a worker's question about a nested call of ``call``."""
    run = call.run
    if question == "cache_get":
        value = MISS if run.cache is None else run.cache.cache_get(payload)
    elif question == "replay":
        slot, name = payload
        value = MISS if call.slot is None else run.checkpoints.lookup(call.slot + slot, name)
    else:
        raise ValueError(f"unknown question from a worker: {question!r}")
    return (False, None) if value is MISS else (True, _serde.dumps(value))


def keep(call: Any, what: str, payload: Any) -> None:
    """Store what a worker reports of a nested call of ``call``."""
    run = call.run
    if what == "cache_put" and run.cache is not None:
        key, ttl, blob = payload
        what = f"a cache entry of a call inside {call.task.name!r}"
        watch = None if run.ledger is None else run.ledger.watch(what)
        run.cache.cache_put(key, None, ttl, blob, watch)  # a failure is the run's error
    elif what == "outcome" and call.slot is not None:
        slot, name, blob = payload
        run.checkpoints.keep(call.slot + slot, name, blob)
