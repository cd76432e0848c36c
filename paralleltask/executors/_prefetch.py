"""How many sync calls a worker may hold: from each task's mean run time so far.

Split from ``_pool.py``. A worker that holds more than its running call never waits a
round trip for the next one; about ``PREFETCH_SECONDS`` of expected work is the target,
between 1 (long calls, a task not seen yet, a call with a timeout: no head-of-line
blocking) and ``MAX_PREFETCH`` (tiny calls, sent in batches).
"""

from __future__ import annotations

#: Expected work a worker may hold queued beyond its running call (prefetch target).
PREFETCH_SECONDS = 0.002
#: Most sync calls a worker may hold at once (and so the largest batch message).
MAX_PREFETCH = 64
#: Tasks whose mean run time the pool remembers (then it starts over).
RUN_TIMES_KEPT = 4096


class RunTimes:
    """Mean run time of each task's calls (a moving average, by task id), and the
    prefetch depth it implies. A task not seen yet counts as long: no prefetch until
    its calls prove short. Used under the pool lock."""

    __slots__ = ("_means",)

    def __init__(self) -> None:
        self._means: dict[int, float] = {}

    def prefetch_depth(self, task) -> int:
        """Sync calls a worker may hold: about PREFETCH_SECONDS of expected work, judged
        by the next pending call's task (its calls' mean run time so far); a task with a
        timeout only runs on an empty worker."""
        if task.timeout is not None:
            return 1
        mean = self._means.get(task.task_id, PREFETCH_SECONDS)
        return max(1, min(MAX_PREFETCH, int(PREFETCH_SECONDS / max(mean, 1e-7))))

    def record(self, task_id: int, seconds: float) -> None:
        means = self._means
        mean = means.get(task_id)
        if mean is None:
            if len(means) >= RUN_TIMES_KEPT:  # tasks made per call, say
                means.clear()
            means[task_id] = seconds
        else:
            means[task_id] = mean + 0.2 * (seconds - mean)
