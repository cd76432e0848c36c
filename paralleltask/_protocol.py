"""The messages on a worker's pipe: each a named tuple whose first field is its kind.

Both ends read messages as the named types below, and build them by name: as the type
(``Cancel(CANCEL, call_id)``), or, for the two sent for every call, with the builders
:func:`wire_call_order` and :func:`wire_done`, whose parameters are those types' fields.
Bytes are made and read only by :func:`dumps`, :func:`dumps_call` and :func:`loads`,
here. On the pipe each message is a plain tuple of the same fields: a NamedTuple
pickles by reduction (its class looked up, its fields as arguments, its Python
``__new__`` run on load), which measured about 4 µs more per call (a CALL of one item,
its DONE) than plain tuples. Building a NamedTuple costs too (0.5 µs for a CallOrder by
keyword, then ``tuple()``; a builder 0.1 µs): the per-call messages skip it.

Parent → worker::

    CallBatch(CALL, items, forget)
        run these calls (a batch of one or more), sync ones in order; each item is a
        CallOrder(call_id, fn_id, fn_blob, args_blob, is_async, run_id, run_blob,
        attempt): fn_blob (the task's pickle) is sent once per worker, None in later
        calls, which name fn_id only; args_blob is (args, kwargs[, scratch]) pickled;
        run_blob is the run's pickled RunInfo (config, context, stream modes, retry
        policies), pickled once per run; attempt is (its number, when the first
        attempt began), as Run.of_call takes it. forget: fn_ids to drop first, chosen
        by the parent's LRU of the functions this worker holds (executors/_known.py:
        never one a call it holds still needs)
    Cancel(CANCEL, call_id)     skip a call not started yet; cancel a running async one
                                (a running sync call is stopped by killing its worker)
    Stop(STOP)                  finish and exit (shutdown; a worker retired at a limit
                                gets it after its last DONE)
    Answer(ANSWER, request_id, found, blob)
                                the answer to an ASK: found, and the value pickled

Worker → parent::

    Ready(READY, pid, progress)             booted, initializer done; progress: whether
                                            the descriptor of its progress word follows
                                            (8 bytes of shared memory where the worker
                                            writes the id of each sync call it starts:
                                            the parent reads it when the worker dies)
    BootFailed(BOOT_FAILED, traceback_text) the initializer raised (or would not
                                            unpickle); the worker exits
    Done(DONE, call_id, status, blob, seconds, rss, released)
                                            a call's outcome (statuses below), how long
                                            it ran (which sizes the prefetch), the
                                            worker's RSS in bytes after it (None when
                                            the pool has no max_memory_per_child), and
                                            whether the worker unmapped the call's
                                            argument segments before sending it: no
                                            object there still reads them, so the parent
                                            may write the next call's buffers into them
    Dones(DONES, items)                     several Dones in one message: a worker running
                                            short calls back to back holds their Dones
                                            while more are queued (at most DONES_HELD,
                                            DONES_AGE seconds), so one read delivers many
    Event(EVENT, call_id, mode, blob)       a stream chunk written while the call runs
                                            (custom chunks, nested calls' updates)
    Ask(ASK, call_id, request_id, question, payload)
                                            a question about a nested call of call_id
                                            (a cache entry, a checkpointed result); the
                                            worker waits for the ANSWER
    Keep(KEEP, call_id, what, payload)      a nested call's result to store (cache entry,
                                            checkpoint slot); no answer
    Started(STARTED, call_id)               a call with a timeout starts running (its
                                            function and arguments are loaded): its
                                            clock starts
    Heartbeat(HEARTBEAT, call_id)           progress of a call with an idle timeout
                                            (runtime.heartbeat(), stream-writer events)
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

from ._serde import PROTOCOL

CALL = 1
CANCEL = 2
STOP = 3
ANSWER = 4

READY = 10
BOOT_FAILED = 11
DONE = 12
EVENT = 13
ASK = 14
KEEP = 15
HEARTBEAT = 16
STARTED = 17
DONES = 18

# DONE statuses
OK = 0  #: blob is the pickled result
RAISED = 1  #: blob is an exception pickled by _serde.dumps_exception
NOT_LOADED = 2  #: blob is text: the function or the arguments would not unpickle
NOT_PICKLED = 3  #: blob is text: the result would not pickle
CANCELLED = 4  #: the call was cancelled (skipped, or an async one stopped); blob is empty


# -- parent → worker ------------------------------------------------------------------


class CallOrder(NamedTuple):
    """One call of a CALL batch; its fields are the worker's ``_start_call`` parameters."""

    call_id: int
    fn_id: int
    fn_blob: bytes | None
    args_blob: bytes
    is_async: bool
    run_id: int
    run_blob: bytes
    attempt: tuple[int, float]


def wire_call_order(
    call_id: int,
    fn_id: int,
    fn_blob: bytes | None,
    args_blob: bytes,
    is_async: bool,
    run_id: int,
    run_blob: bytes,
    attempt: tuple[int, float],
) -> tuple:
    """A CallOrder as the pipe carries it (a plain tuple), for :func:`dumps_call`."""
    return (call_id, fn_id, fn_blob, args_blob, is_async, run_id, run_blob, attempt)


class CallBatch(NamedTuple):
    kind: int  # CALL
    items: list[CallOrder]
    forget: tuple[int, ...] | list[int]


class Cancel(NamedTuple):
    kind: int  # CANCEL
    call_id: int


class Stop(NamedTuple):
    kind: int  # STOP


class Answer(NamedTuple):
    kind: int  # ANSWER
    request_id: int
    found: bool
    blob: bytes | None


# -- worker → parent ------------------------------------------------------------------


class Ready(NamedTuple):
    kind: int  # READY
    pid: int
    progress: bool


class BootFailed(NamedTuple):
    kind: int  # BOOT_FAILED
    traceback_text: str


class Done(NamedTuple):
    kind: int  # DONE
    call_id: int
    status: int
    blob: Any  # bytes (OK, RAISED) or text (NOT_LOADED, NOT_PICKLED, CANCELLED)
    seconds: float
    rss: int | None
    released: bool


def wire_done(
    call_id: int, status: int, blob: Any, seconds: float, rss: int | None, released: bool
) -> tuple:
    """A Done as the pipe carries it (a plain tuple), for :func:`dumps`."""
    return (DONE, call_id, status, blob, seconds, rss, released)


class Dones(NamedTuple):
    kind: int  # DONES
    items: list[Done]


def dumps_dones(items: list[tuple]) -> bytes:
    """Several wire Dones (:func:`wire_done`'s tuples) as one message's bytes."""
    return pickle.dumps((DONES, items), PROTOCOL)


class Event(NamedTuple):
    kind: int  # EVENT
    call_id: int
    mode: str
    blob: bytes


class Ask(NamedTuple):
    kind: int  # ASK
    call_id: int
    request_id: int
    question: str
    payload: Any


class Keep(NamedTuple):
    kind: int  # KEEP
    call_id: int
    what: str
    payload: Any


class Started(NamedTuple):
    kind: int  # STARTED
    call_id: int


class Heartbeat(NamedTuple):
    kind: int  # HEARTBEAT
    call_id: int


#: The named type of each kind but CALL (whose items are named too: see loads).
_TYPES: dict[int, Any] = {
    CANCEL: Cancel,
    STOP: Stop,
    ANSWER: Answer,
    READY: Ready,
    BOOT_FAILED: BootFailed,
    DONE: Done,
    EVENT: Event,
    ASK: Ask,
    KEEP: Keep,
    STARTED: Started,
    HEARTBEAT: Heartbeat,
}

# tuple.__new__(Type, fields) is what Type._make does, less its length check (the
# fields come from our own other end) and its Python frame: the receive path pays C only.
_named = tuple.__new__


def dumps(message: tuple) -> bytes:
    """A message of any kind but CALL (a named type, or a wire tuple from a builder) as
    its bytes on the pipe: a plain tuple."""
    return pickle.dumps(tuple(message), PROTOCOL)


def dumps_call(items: list[tuple], forget: tuple[int, ...] | list[int]) -> bytes:
    """A CALL as its bytes on the pipe: CallBatch's fields but its kind, the items made by
    :func:`wire_call_order` (no CallBatch built per batch: a Python frame it would cost)."""
    return pickle.dumps((CALL, items, forget), PROTOCOL)


def loads(data: bytes) -> Any:
    """The message in ``data`` as its named type (a CALL's items as CallOrder)."""
    message = pickle.loads(data)
    kind = message[0]
    if kind == CALL:
        items = [_named(CallOrder, item) for item in message[1]]
        return _named(CallBatch, (CALL, items, message[2]))
    if kind == DONES:
        return _named(Dones, (DONES, [_named(Done, item) for item in message[1]]))
    return _named(_TYPES[kind], message)
