"""Timeouts: LangGraph's ``timeout=`` (seconds, ``timedelta``, ``TimeoutPolicy``).

LangGraph refuses a timeout on sync code, because a thread cannot be stopped. A process
can: on the process pool the parent watches each timed call (its dispatcher wakes at the
nearest deadline) and kills the worker of a sync call past its time; an async call is
cancelled. Here: the refusal where code cannot be stopped, the error, and the watchdog
for async code running in this process (thread and inline executors, async bodies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import TaskTimeoutError
from .types import TimeoutPolicy

SYNC_REFUSED = (
    "Node timeouts are only supported for async nodes because sync Python execution "
    "cannot be safely cancelled in-process."
)


def as_timeout_policy(value: Any) -> TimeoutPolicy | None:
    return TimeoutPolicy.coerce(value)


def sync_refused(name: str, kind: str, where: str) -> ValueError:
    """LangGraph's error for a timeout on sync code, and where paralleltask can do it."""
    return ValueError(
        f"{SYNC_REFUSED} {kind} {name!r} is sync. {where} (paralleltask stops a sync "
        "task past its timeout when it runs on the process pool: its worker is killed "
        "and replaced)"
    )


def timeout_error(name: str, policy: TimeoutPolicy, started: float, last: float, now: float):
    """The error for a call past its policy at ``now``, or None if it is not."""
    if policy.run_timeout is not None and now - started >= policy.run_timeout:
        kind = "run"
    elif policy.idle_timeout is not None and now - last >= policy.idle_timeout:
        kind = "idle"
    else:
        return None
    return TaskTimeoutError(
        name,
        now - started,
        kind=kind,
        idle_timeout=policy.idle_timeout,
        run_timeout=policy.run_timeout,
    )


def next_check(policy: TimeoutPolicy, started: float, last: float) -> float:
    """When the call must be looked at next (monotonic seconds)."""
    times = []
    if policy.run_timeout is not None:
        times.append(started + policy.run_timeout)
    if policy.idle_timeout is not None:
        times.append(last + policy.idle_timeout)
    return min(times)


class Progress:
    """The last progress signal of one attempt (``time.monotonic()``)."""

    __slots__ = ("last", "policy")

    def __init__(self, policy: TimeoutPolicy) -> None:
        self.policy = policy
        self.last = time.monotonic()

    def heartbeat(self) -> None:
        self.last = time.monotonic()

    def wrap_writer(self, writer: Callable[[Any], None]) -> Callable[[Any], None]:
        """A stream writer whose events count as progress (``refresh_on="auto"``)."""
        if self.policy.refresh_on != "auto":
            return writer

        def write(chunk: Any) -> None:
            self.last = time.monotonic()
            writer(chunk)

        return write


async def watched(awaitable: Awaitable, name: str, progress: Progress) -> Any:
    """Await ``awaitable``; cancel it and raise TaskTimeoutError once it is past
    its policy (checked at each deadline, not polled)."""
    task = asyncio.ensure_future(awaitable)
    started = time.monotonic()
    # Idleness counts from the watch's start at the earliest: a Progress made a moment
    # before would otherwise report an idle timeout with less run time elapsed than the
    # idle limit (0.2995 s for a 0.3 s idle timeout, seen under load).
    progress.last = max(progress.last, started)
    policy = progress.policy
    while True:
        delay = max(0.0, next_check(policy, started, progress.last) - time.monotonic())
        done, _ = await asyncio.wait({task}, timeout=delay)
        if done:
            return task.result()
        error = timeout_error(name, policy, started, progress.last, time.monotonic())
        if error is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise error
