"""Which task functions one worker holds: a bounded book, least recently used first.

A task's function is pickled once and sent to a worker once; later calls name it by id.
A program that makes a new task per run (a ``@task`` closure created in the body) would
make both books grow without end: the parent's per-worker set of ids and the worker's
dict of unpickled functions (measured: a worker's RSS from 84 MB to 2.4 GB over 3 000
runs). So the parent keeps at most ``FUNCTIONS_KEPT`` ids per worker and decides what
the worker forgets: the ids it drops travel on the next CALL to that worker, and the
worker drops them before it queues that CALL's calls. The two books cannot disagree
(a call never reaches a worker that forgot its function), because an id is only
dropped while no call of it is held by that worker: every call sent before has been
reported DONE, so the worker no longer looks it up, and every call sent after either
carries the function again or is sent after the worker has forgotten it, on the same pipe.
"""

from __future__ import annotations

import collections
from collections.abc import Collection

#: Functions a worker keeps (per worker, parent and worker alike).
FUNCTIONS_KEPT = 256


class KnownFunctions(collections.OrderedDict):
    """The parent's book of the functions one worker holds: task ids, least recently
    used first (an OrderedDict, so the pool's hot path marks a use in C)."""

    def need(self, task_id: int) -> bool:
        """Mark ``task_id`` used now; True if the worker lacks it (send the pickle)."""
        if task_id in self:
            self.move_to_end(task_id)
            return False
        self[task_id] = None
        return True

    def evict(self, held: Collection[int]) -> list[int]:
        """Drop the least recently used ids beyond ``FUNCTIONS_KEPT``, except ``held``
        (those of calls the worker holds, not yet DONE); the worker must forget the ids
        returned. If more than ``FUNCTIONS_KEPT`` functions are held, the book stays
        over until some are done (the next eviction catches up)."""
        forget = []
        for task_id in list(self):
            if len(self) <= FUNCTIONS_KEPT:
                break
            if task_id not in held:
                del self[task_id]
                forget.append(task_id)
        return forget
