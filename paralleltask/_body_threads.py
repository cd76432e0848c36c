"""The body of a sync ``stream()`` run, beside its consumer, in a thread kept for it.

A streamed body runs beside its consumer, which iterates the chunks it streams. Starting
a thread for each run cost ~2.5 % of a streamed W2 (the start-up handshake, and a cold
thread); a kept thread is woken instead.
A thread is only reused once idle, so a body that waits on another stream never waits
for a thread. At exit, running bodies finish and idle threads go (the stdlib pool's rule).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._stream import StreamSink

#: High enough never to queue a body behind another: only as many threads as streams
#: that ran at once are ever started.
_MOST_AT_ONCE = 1 << 16

_lock = threading.Lock()
_threads: cf.ThreadPoolExecutor | None = None


def stream_beside(
    body: Callable[[], Any], sink: StreamSink, stop: Callable[[], None], single: bool, version: str
) -> Iterator[Any]:
    """Run ``body`` in a kept thread (in a copy of this context) and yield the chunks it
    streams to ``sink`` as they come; then raise what it raised. ``stop`` stops the run
    when the consumer stops iterating (or is interrupted) first."""
    outcome: list[BaseException] = []

    def in_thread() -> None:
        try:
            body()
        except BaseException as exc:
            outcome.append(exc)
        finally:
            sink.end()  # the consumer's iteration ends once it has read all

    ran = run_body(functools.partial(contextvars.copy_context().run, in_thread))
    try:
        yield from sink.chunks(single, version)
    except BaseException:  # Ctrl-C, or the consumer stopped iterating
        stop()
        raise
    finally:
        ran.result()  # the thread has ended: the body's outcome is in `outcome`
    if outcome:
        raise outcome[0]


def run_body(body: Callable[[], None]) -> cf.Future:
    """Run ``body`` in a kept thread; the future is done when it returns."""
    global _threads
    threads = _threads
    if threads is None:
        with _lock:
            if _threads is None:
                _threads = cf.ThreadPoolExecutor(_MOST_AT_ONCE, "paralleltask-stream")
            threads = _threads
    return threads.submit(body)


def _forget_threads_after_fork() -> None:
    # A forked child has none of the parent's threads, but the pool would count its
    # idle ones and queue the child's bodies for them.
    global _threads, _lock
    _threads = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork)
