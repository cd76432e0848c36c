"""Stream modes and LangGraph's chunk shapes.

A run that streams has a sink. Task calls report to it as they start and finish
(``updates``, ``debug``, ``tasks`` chunks), code reports custom chunks through
``get_stream_writer()``, and the entrypoint reports its own start and end. The parent's
:class:`StreamSink` queues ``(mode, chunk)`` pairs for the consumer of ``stream()``, which
the dispatcher wakes once per batch of results it delivers; in a pool or Dask worker,
:class:`SendingSink` sends them to the parent (the pipe, a Dask event) while the task
runs.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import functools
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from . import _serde
from .errors import GraphInterrupt

#: Modes paralleltask produces, as LangGraph names them.
SUPPORTED_MODES = ("values", "updates", "custom", "debug", "tasks", "checkpoints")
#: LangGraph modes with nothing to produce here, refused rather than silently empty.
REFUSED_MODES = {
    "messages": "it streams LLM tokens through LangChain callbacks, which paralleltask "
    "does not run",
}

#: Modes whose chunks code running in a worker can produce (the rest come from the parent).
WORKER_MODES = frozenset({"custom", "updates", "debug", "tasks"})
TASK_MODES = frozenset({"debug", "tasks"})

#: modes -> (frozenset of them, wants custom chunks, wants updates, wants task events)
_FLAGS: dict[Any, tuple[frozenset[str], bool, bool, bool]] = {}

PUSH_TRIGGERS = ("__pregel_push",)
START_TRIGGERS = ("__start__",)


def normalize_modes(stream_mode: Any) -> tuple[tuple[str, ...], bool]:
    """``(modes, single)``: the requested modes, and whether chunks come without a mode tag."""
    single = not isinstance(stream_mode, list)  # LangGraph tags a list's chunks only
    modes = (stream_mode,) if isinstance(stream_mode, str) else tuple(stream_mode)
    for mode in modes:
        if mode in REFUSED_MODES:
            reason = REFUSED_MODES[mode]
            raise NotImplementedError(f"stream_mode={mode!r} is not supported: {reason}")
        if mode not in SUPPORTED_MODES:
            raise ValueError(
                f"unknown stream_mode {mode!r}; paralleltask streams {list(SUPPORTED_MODES)}"
            )
    return modes, single


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class Sink:
    """Where a run's chunks go; subclasses say how to deliver one ``(mode, chunk)``."""

    def __init__(self, modes: frozenset[str] | tuple[str, ...]) -> None:
        # Workers make one sink per call: the flags come from a cache, not set algebra.
        flags = _FLAGS.get(modes)
        if flags is None:
            frozen = frozenset(modes)
            wants_tasks = bool(frozen & TASK_MODES)
            flags = _FLAGS[modes] = (frozen, "custom" in frozen, "updates" in frozen, wants_tasks)
        self.modes, self.wants_custom, self._wants_updates, self._wants_tasks = flags
        self.step = 0  # of task events in debug chunks: a checkpointed run's own step

    def emit(self, mode: str, chunk: Any) -> None:
        raise NotImplementedError

    def custom(self, chunk: Any) -> None:
        """The stream writer of code in this run."""
        if self.wants_custom:
            self.emit("custom", chunk)

    def task_started(self, task_id: str, name: str, input: Any, triggers: tuple) -> None:
        if self._wants_tasks:
            payload = {"id": task_id, "name": name, "input": input, "triggers": triggers}
            self._task_event("task", payload)

    def task_finished(
        self, task_id: str, name: str, error: Any, result: dict, interrupts: list | None = None
    ) -> None:
        if self._wants_tasks:
            payload = {"id": task_id, "name": name, "error": error, "result": result}
            payload["interrupts"] = interrupts or []
            self._task_event("task_result", payload)

    def _task_event(self, kind: str, payload: dict) -> None:
        if "tasks" in self.modes:
            self.emit("tasks", payload)
        if "debug" in self.modes:
            event = {"step": self.step, "timestamp": _now(), "type": kind, "payload": payload}
            self.emit("debug", event)

    def call_replayed(self, name: str, args: tuple, kwargs: dict) -> None:
        """A call answered from a checkpoint: its ``task`` event, and nothing more."""
        if self._wants_tasks:
            self.task_started(str(uuid.uuid4()), name, (args, kwargs), PUSH_TRIGGERS)

    def call_started(self, call: Any, args: tuple, kwargs: dict) -> None:
        if self._wants_tasks:
            self.task_started(call_task_id(call), call.task.name, (args, kwargs), PUSH_TRIGGERS)

    def call_finished(self, call: Any, ok: bool, value: Any) -> None:
        """A task call ended: its ``updates`` chunk and its ``task_result``."""
        if ok and self._wants_updates:
            self.emit("updates", {call.task.name: value})
        if self._wants_tasks and (ok or not isinstance(value, GraphInterrupt)):
            # (an interrupted task has no result yet: LangGraph streams none)
            result = {"__return__": value} if ok else {}
            self.task_finished(call_task_id(call), call.task.name, None if ok else value, result)


class SendingSink(Sink):
    """The sink of a call's run far from the parent (a pool worker, a Dask worker):
    each chunk is pickled and sent at once, tagged with its call, through ``send``."""

    def __init__(
        self, modes: frozenset[str], call_id: int, send: Callable[[int, str, bytes], None]
    ) -> None:
        super().__init__(modes)
        self._call_id = call_id
        self._send = send

    def emit(self, mode: str, chunk: Any) -> None:
        if mode in self.modes:
            self._send(self._call_id, mode, _serde.dumps(chunk))


def interrupt_dicts(interrupts: Any) -> list[dict]:
    """Interrupts as debug payloads show them."""
    return [
        {"value": i.value, "id": i.id, "response_schema": i.response_schema} for i in interrupts
    ]


def call_task_id(call: Any) -> str:
    """A stable id string for a call, in the shape of LangGraph's task ids."""
    return task_id_of(call.call_id)


def task_id_of(call_id: int) -> str:
    """The task id of the call numbered ``call_id`` (see :func:`call_task_id`)."""
    return str(uuid.UUID(int=call_id))


class StreamSink(Sink):
    """The parent's sink: keeps ``(mode, chunk)`` pairs in order for the consumer of
    ``stream()`` and wakes it when it sleeps (from the dispatcher: once per
    :data:`WAKE_DELAY` at most).

    Every thread appends to one deque, so chunks keep the order they were emitted in;
    only the wake-up is held (see :func:`hold_wakeups`), never a chunk.
    """

    def __init__(self, modes: tuple[str, ...], loop: asyncio.AbstractEventLoop | None = None):
        super().__init__(modes)
        self._queued: collections.deque = collections.deque()
        self.waiting = False  # the consumer sleeps until woken
        self._ending = False  # the end marker is queued (or about to be)
        self.ended = False  # the consumer has taken the end marker
        if loop is None:
            self._tokens: queue.SimpleQueue = queue.SimpleQueue()
            self._wake = functools.partial(self._tokens.put, None)
        else:
            self._event = asyncio.Event()
            self._wake = functools.partial(loop.call_soon_threadsafe, self._event.set)

    def emit(self, mode: str, chunk: Any) -> None:
        if mode in self.modes:
            self._queued.append((mode, chunk))
            if self.waiting:
                self._signal()

    def end(self) -> None:
        """The run is over: the consumer stops after the chunks emitted before this."""
        self._ending = True  # before the marker: a consumer that takes it sees the flag
        self._queued.append(_END)
        if self.waiting:
            self._signal()

    def _signal(self) -> None:
        held = _held
        if not held.active:
            self.wake()
        elif self not in held.sinks:
            held.sinks.append(self)
            if held.due is None:
                held.due = time.monotonic() + WAKE_DELAY

    def wake(self) -> None:
        self.waiting = False
        try:
            self._wake()
        except RuntimeError:  # the consumer's event loop is closed: nobody to wake
            pass

    def chunks(self, single: bool, version: str) -> Iterator[Any]:
        """The chunks as ``stream()`` yields them, until :meth:`end` (blocking)."""
        while True:
            yield from self._taken(single, version)
            if self.ended:
                return
            self.waiting = True
            if not self._queued:
                self._tokens.get()
            self.waiting = False

    async def achunks(self, single: bool, version: str) -> AsyncIterator[Any]:
        """The chunks as ``astream()`` yields them, until :meth:`end`."""
        while True:
            for chunk in self._taken(single, version):
                yield chunk
            if self.ended:
                return
            self.waiting = True
            if not self._queued:
                await self._event.wait()
                self._event.clear()
            self.waiting = False

    def _taken(self, single: bool, version: str) -> list[Any]:
        """The chunks queued so far, shaped for the caller, up to the end marker.

        Taken as one batch: the consumer yields from a list, not from a generator
        resumed once per chunk (a chunk per task call is on W2's hot path).
        """
        queued = self._queued
        items = [queued.popleft() for _ in range(len(queued))]  # only we pop
        if self._ending:
            for index, item in enumerate(items):
                if item is _END:
                    del items[index:]
                    self.ended = True
                    break
        if single and version == "v1":
            return [item[1] for item in items]
        return [formatted(item, single, version) for item in items]


#: What :meth:`StreamSink.end` queues.
_END = object()

#: How long the dispatcher may hold a sleeping consumer's wake-up while it has more
#: results to deliver at once: each wake-up costs thread switches on a busy machine (a
#: consumer woken every pass slowed a streamed W2 by ~3 %). Chunks are never held: the
#: dispatcher wakes held consumers as soon as it has nothing more to read, and other
#: threads (the body's last chunks, its end) wake them at once.
WAKE_DELAY = 0.005


class _HeldWakeups(threading.local):
    def __init__(self) -> None:
        self.active = False
        self.sinks: list[StreamSink] = []
        self.due: float | None = None  # when the held consumers must be woken


_held = _HeldWakeups()


def hold_wakeups() -> None:
    """Until :func:`release_wakeups`, the consumers that chunks this thread emits would
    wake are held instead (the dispatcher, for one pass over its messages)."""
    _held.active = True


def release_wakeups() -> bool:
    """End the hold; wake the consumers held for :data:`WAKE_DELAY` already. True if
    some are still held: then call :func:`wake_held` before waiting for anything."""
    held = _held
    held.active = False
    if held.due is None:
        return False
    if time.monotonic() < held.due:
        return True
    wake_held()
    return False


def wake_held() -> None:
    """Wake every consumer held by this thread, now."""
    held = _held
    sinks, held.sinks, held.due = held.sinks, [], None
    for sink in sinks:
        sink.wake()


def formatted(item: tuple[str, Any], single: bool, version: str) -> Any:
    """A chunk as ``stream()`` yields it: bare, ``(mode, chunk)``, or v2's dict."""
    mode, chunk = item
    if version == "v2":
        if mode == "values":
            # LangGraph pops the interrupts into their own field, from the very dict that
            # the "updates" chunk holds too (which a list of the chunks then shows empty).
            interrupts = chunk.pop("__interrupt__", ()) if isinstance(chunk, dict) else ()
            return {"type": mode, "ns": (), "data": chunk, "interrupts": interrupts}
        return {"type": mode, "ns": (), "data": chunk}
    return chunk if single else item
