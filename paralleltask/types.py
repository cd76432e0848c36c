"""Value types of the public contract, with LangGraph's fields, order and defaults."""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, NamedTuple

from ._keyhash import array_data, pickle_digest

__all__ = [
    "CachePolicy",
    "Command",
    "Interrupt",
    "PregelTask",
    "RetryPolicy",
    "Runtime",
    "StateSnapshot",
    "StreamWriter",
    "TimeoutPolicy",
    "default_cache_key",
    "default_retry_on",
]

StreamWriter = Callable[[Any], None]


def default_retry_on(exc: Exception) -> bool:
    """LangGraph's default: retry anything but the errors a retry cannot fix.

    Connection errors and HTTP 5xx (httpx, requests) are retried; ``ValueError``,
    ``TypeError``, ``RuntimeError``, ``OSError`` and their kin are final. httpx and
    requests are looked up in ``sys.modules`` only: never imported here.
    """
    if isinstance(exc, ConnectionError):
        return True
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.HTTPStatusError):
        return 500 <= exc.response.status_code < 600
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(exc, requests.HTTPError):
        return 500 <= exc.response.status_code < 600 if exc.response else True
    return not isinstance(
        exc,
        (
            ValueError,
            TypeError,
            ArithmeticError,
            ImportError,
            LookupError,
            NameError,
            SyntaxError,
            RuntimeError,
            ReferenceError,
            StopIteration,
            StopAsyncIteration,
            OSError,
        ),
    )


class RetryPolicy(NamedTuple):
    """How to retry a failed task call (or entrypoint body), as LangGraph's.

    ``retry_on`` is an exception type, a sequence of them, or a callable deciding from
    the exception. Waits are ``initial_interval * backoff_factor ** (failures - 1)``,
    capped at ``max_interval``, plus up to 1 s of jitter.
    """

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: type[Exception] | Sequence[type[Exception]] | Callable[[Exception], bool] = (
        default_retry_on
    )


def _no_op_writer(chunk: Any) -> None:
    """The stream writer of a run that streams no custom chunks."""


def _no_op_heartbeat() -> None:
    """A heartbeat no timeout listens to."""


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Where code runs: its checkpoint, its task and which attempt of it (LangGraph's
    fields). A task's ``checkpoint_ns`` is ``"entrypoint:id|task:id"``."""

    checkpoint_id: str
    checkpoint_ns: str
    task_id: str
    thread_id: str | None = None
    run_id: str | None = None  #: the config's ``run_id``, seen by the body only
    node_attempt: int = 1
    node_first_attempt_time: float | None = None  #: ``time.time()`` of the first attempt

    def patch(self, **overrides: Any) -> ExecutionInfo:
        """A copy with ``overrides`` replaced."""
        return replace(self, **overrides)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What LangGraph Server tells a run; always None here, as in open-source LangGraph."""

    assistant_id: str
    graph_id: str
    user: Any = None


@dataclass(frozen=True)
class Runtime:
    """What a run offers its code: ``context``, ``store``, ``stream_writer``,
    ``heartbeat``, ``previous`` and ``execution_info``, as LangGraph's ``Runtime``."""

    context: Any = None
    store: Any = None
    stream_writer: StreamWriter = field(default=_no_op_writer)
    heartbeat: Callable[[], None] = field(default=_no_op_heartbeat)
    previous: Any = None
    execution_info: ExecutionInfo | None = None
    server_info: ServerInfo | None = None
    control: Any = None  #: LangGraph's drain control; None: runs here are not drained

    def merge(self, other: Runtime) -> Runtime:
        """``other``'s values, this runtime's where ``other`` has none (LangGraph's rule)."""
        return Runtime(
            context=other.context or self.context,
            store=other.store or self.store,
            stream_writer=self.stream_writer
            if other.stream_writer is _no_op_writer
            else other.stream_writer,
            heartbeat=self.heartbeat if other.heartbeat is _no_op_heartbeat else other.heartbeat,
            previous=self.previous if other.previous is None else other.previous,
            execution_info=other.execution_info or self.execution_info,
            server_info=other.server_info or self.server_info,
            control=other.control or self.control,
        )

    def override(self, **overrides: Any) -> Runtime:
        """A copy with ``overrides`` replaced."""
        return replace(self, **overrides)

    def patch_execution_info(self, **overrides: Any) -> Runtime:
        """A copy whose ``execution_info`` has ``overrides`` replaced."""
        if self.execution_info is None:
            raise RuntimeError("Cannot patch execution_info before it has been set")
        return replace(self, execution_info=self.execution_info.patch(**overrides))

    @property
    def drain_requested(self) -> bool:
        return self.control.drain_requested if self.control is not None else False

    @property
    def drain_reason(self) -> str | None:
        return self.control.drain_reason if self.control is not None else None


#: Types _freeze returns as they are without asking the Hashable ABC (the hot path).
_PLAIN = frozenset({int, str, bytes, float, bool, type(None), tuple})


def _freeze(obj: Any, depth: int = 10) -> Any:
    """Arguments as hashable plain data, as LangGraph freezes them for cache keys."""
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is dict and not obj:
        return ()
    if kind is bytearray:  # pickled as it is, in place (not as a tuple of its ints)
        return obj
    if isinstance(obj, Hashable) or depth <= 0:
        return obj
    if isinstance(obj, Mapping):
        return tuple(sorted((k, _freeze(v, depth - 1)) for k, v in obj.items()))
    if isinstance(obj, Sequence):
        return tuple(_freeze(x, depth - 1) for x in obj)
    if hasattr(obj, "tobytes"):  # numpy arrays and friends: the same bytes seen as
        # another dtype or shape are another value (LangGraph's #8009 keys them alike)
        kind_name = f"{kind.__module__}.{kind.__qualname__}"
        dtype = getattr(obj, "dtype", None)
        dtype_name = None if dtype is None else str(dtype)
        if getattr(dtype, "hasobject", False):  # tobytes() would be the objects' addresses
            return (kind_name, dtype_name, _freeze(obj.tolist(), depth - 1), obj.shape)
        # pickles as obj.tobytes() does; a large C-contiguous array's memory is lent
        return (kind_name, dtype_name, array_data(obj), getattr(obj, "shape", None))
    return obj


def default_cache_key(*args: Any, **kwargs: Any) -> bytes:
    """The default cache key: a sha256 digest (32 bytes) of the frozen arguments pickled
    with protocol 5 (LangGraph's key is that pickle itself). The pickle is streamed into
    the hash, and each payload of 64 KiB or more (a large array's data, large bytes) is
    hashed in place with xxh3-128, its digest standing for it, so a large argument is
    never copied and costs a tenth of a sha256 pass; a value that will not pickle raises
    ``TypeError`` naming its argument."""
    try:
        return pickle_digest((_freeze(args), _freeze(kwargs)))
    except Exception as exc:
        raise _unkeyable(args, kwargs, exc) from exc


def _unkeyable(args: tuple, kwargs: dict, exc: Exception) -> TypeError:
    """The error of arguments that cannot be keyed, naming the first that cannot."""
    named = [(f"positional argument {i}", v, False) for i, v in enumerate(args)]
    named += [(f"keyword argument {k!r}", v, True) for k, v in kwargs.items()]
    for where, value, frozen in named:
        try:  # a positional argument is pickled as it is (a tuple is not frozen)
            pickle_digest(_freeze(value, 9) if frozen else value)
        except Exception as culprit:
            return TypeError(
                f"Cache key: {where} ({type(value).__name__}) cannot be keyed: "
                f"{type(culprit).__name__}: {culprit}"
            )
    return TypeError(f"Cache key: the arguments cannot be keyed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class CachePolicy:
    """Cache a task's (or an entrypoint's) results, keyed by ``key_func(*args,
    **kwargs)``; entries expire after ``ttl`` seconds (None: never)."""

    key_func: Callable[..., str | bytes] = default_cache_key
    ttl: float | None = None


class Interrupt:
    """A pause asked for by ``interrupt(value)``: what it surfaced, and the id a
    ``Command(resume={id: answer})`` answers it by. LangGraph's fields and repr."""

    __slots__ = ("id", "response_schema", "value")

    def __init__(self, value: Any, id: str = "placeholder-id", *, response_schema: Any = None):
        self.value = value
        self.id = id
        self.response_schema = response_schema

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interrupt):
            return NotImplemented
        return (self.value, self.id, self.response_schema) == (
            other.value,
            other.id,
            other.response_schema,
        )

    def __hash__(self) -> int:
        return hash((self.id,))

    def __repr__(self) -> str:
        return (
            f"Interrupt(value={self.value!r}, id={self.id!r}, "
            f"response_schema={self.response_schema!r})"
        )

    def __reduce__(self):
        return _make_interrupt, (self.value, self.id, self.response_schema)


def _make_interrupt(value: Any, id: str, response_schema: Any) -> Interrupt:
    return Interrupt(value, id, response_schema=response_schema)


@dataclass(frozen=True)
class Command:
    """What to do next with an interrupted run: ``resume`` answers the pending
    ``interrupt()`` (a single value for the next one, or ``{interrupt_id: value}``).

    LangGraph's ``graph``, ``update`` and ``goto`` belong to graphs; an entrypoint
    refuses them (as LangGraph's functional API has no nodes to go to)."""

    graph: str | None = None
    update: Any = None
    resume: Any = None
    goto: Any = ()

    def __repr__(self) -> str:
        fields = {"graph": self.graph, "update": self.update, "resume": self.resume}
        fields["goto"] = self.goto
        contents = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v)
        return f"Command({contents})"

    PARENT = "__parent__"


class PregelTask(NamedTuple):
    """A task of a :class:`StateSnapshot` (LangGraph's fields)."""

    id: str
    name: str
    path: tuple
    error: Exception | None = None
    interrupts: tuple = ()
    state: Any = None
    result: Any = None


class StateSnapshot(NamedTuple):
    """A thread's state at a checkpoint, as LangGraph's ``get_state`` returns it."""

    values: Any
    next: tuple
    config: dict
    metadata: dict | None
    created_at: str | None
    parent_config: dict | None
    tasks: tuple
    interrupts: tuple


def _timeout_seconds(value: Any, field_name: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{field_name} must be greater than 0")
    return seconds


@dataclass(frozen=True)
class TimeoutPolicy:
    """How long one attempt of a task (or entrypoint) may take, as LangGraph's:
    ``run_timeout`` caps its wall time, ``idle_timeout`` the time without progress
    (stream-writer events and ``runtime.heartbeat()``; with ``refresh_on="heartbeat"``
    only the latter). On the process pool a sync task past either is stopped (its
    worker is killed and replaced); an async task is cancelled."""

    run_timeout: float | timedelta | None = None
    idle_timeout: float | timedelta | None = None
    refresh_on: str = "auto"

    @classmethod
    def coerce(cls, value: Any) -> TimeoutPolicy | None:
        """Seconds, a ``timedelta`` or a policy (ours or LangGraph's) as a policy with
        float fields; None when nothing is limited. Invalid values raise ValueError."""
        if value is None:
            return None
        if hasattr(value, "run_timeout") and hasattr(value, "idle_timeout"):
            run, idle = value.run_timeout, value.idle_timeout
            refresh_on = getattr(value, "refresh_on", "auto")
        else:
            run, idle, refresh_on = value, None, "auto"
        if refresh_on not in ("auto", "heartbeat"):
            raise ValueError("refresh_on must be 'auto' or 'heartbeat'")
        run = _timeout_seconds(run, "run_timeout")
        idle = _timeout_seconds(idle, "idle_timeout")
        if run is None and idle is None:
            return None
        return cls(run_timeout=run, idle_timeout=idle, refresh_on=refresh_on)
