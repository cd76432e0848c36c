"""Retry decisions (LangGraph's rules) and the one timer thread that waits out backoffs.

A failed call that a policy retries is handed to :func:`call_later`: a heap of deadlines
served by a single daemon thread. A call in backoff holds no thread, no pool slot and
no worker; its siblings run on.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .types import RetryPolicy


def as_policies(value: Any, where: str) -> tuple:
    """Normalize ``retry_policy=``: None, one policy or a sequence of them."""
    if value is None:
        return ()
    policies = (value,) if _is_policy(value) else tuple(value) if _is_sequence(value) else None
    if policies is None or not all(_is_policy(p) for p in policies):
        raise TypeError(
            f"{where}(retry_policy=...) takes a RetryPolicy or a sequence of them, got {value!r}"
        )
    return policies


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and not _is_policy(value)


def _is_policy(value: Any) -> bool:
    # Ours, or LangGraph's (a NamedTuple with the same fields): half-migrated programs.
    return isinstance(value, RetryPolicy) or (
        isinstance(value, tuple) and getattr(value, "_fields", None) == RetryPolicy._fields
    )


def matching_policy(policies: Sequence, exc: BaseException) -> Any:
    """The first policy whose ``retry_on`` accepts ``exc``, or None."""
    if not isinstance(exc, Exception):
        return None
    for policy in policies:
        if _should_retry_on(policy, exc):
            return policy
    return None


def _should_retry_on(policy: Any, exc: Exception) -> bool:
    retry_on = policy.retry_on
    if isinstance(retry_on, Sequence):
        return isinstance(exc, tuple(retry_on))
    if isinstance(retry_on, type) and issubclass(retry_on, Exception):
        return isinstance(exc, retry_on)
    if callable(retry_on):
        return bool(retry_on(exc))
    raise TypeError(
        "retry_on must be an Exception class, a list or tuple of Exception classes, or a callable"
    )


def backoff(policy: Any, failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure (1-based), as LangGraph."""
    interval = min(
        policy.max_interval, policy.initial_interval * policy.backoff_factor ** (failures - 1)
    )
    return interval + random.uniform(0, 1) if policy.jitter else interval


def retry_delay(policies: Sequence, exc: BaseException, failures: int) -> float | None:
    """After ``failures`` failures ending with ``exc``: seconds to wait, or None to give up."""
    policy = matching_policy(policies, exc)
    if policy is None or failures >= policy.max_attempts:
        return None
    return backoff(policy, failures)


# -- the timer thread ---------------------------------------------------------------

_heap: list[tuple[float, int, Callable[[], None]]] = []
_order = itertools.count()
_wakeup = threading.Condition()
_thread: threading.Thread | None = None


def call_later(delay: float, callback: Callable[[], None]) -> None:
    """Run ``callback()`` on the timer thread after ``delay`` seconds."""
    global _thread
    with _wakeup:
        heapq.heappush(_heap, (time.monotonic() + delay, next(_order), callback))
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="paralleltask-timers", daemon=True)
            _thread.start()
        _wakeup.notify()


def _serve() -> None:
    while True:
        with _wakeup:
            while not _heap or _heap[0][0] > time.monotonic():
                _wakeup.wait(_heap[0][0] - time.monotonic() if _heap else None)
            _, _, callback = heapq.heappop(_heap)
        try:
            callback()
        except Exception:  # a callback's failure must not stop every later retry
            import traceback

            traceback.print_exc()
