"""Threads kept for the bodies of sync ``stream()`` runs.

A streamed body runs beside its consumer. Starting a thread for each run cost ~2.5 % of a
streamed W2 (the start-up handshake, and a cold thread); a kept thread is woken instead.
A thread is only reused once idle, so a body that waits on another stream never waits
for a thread. At exit, running bodies finish and idle threads go (the stdlib pool's rule).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Callable

#: High enough never to queue a body behind another: only as many threads as streams
#: that ran at once are ever started.
_MOST_AT_ONCE = 1 << 16

_lock = threading.Lock()
_threads: cf.ThreadPoolExecutor | None = None


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
