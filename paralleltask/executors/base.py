"""The executor protocol: what an executor must do with the calls a run hands it.

An executor runs each :class:`~paralleltask._call.CallItem` somewhere and reports back
exactly once through ``call.deliver(ok, value)``, from any thread. It moves calls and
their outcomes; the run decides what an outcome means (``_call.py``).
"""

from __future__ import annotations

import abc

from .._call import CANCELLED, CallItem
from .._retry import call_later


class Executor(abc.ABC):
    """Runs task calls. Subclasses: process pool, threads, inline, Dask."""

    #: Whether calls reach this executor as pickled bytes (``payload``) or as live
    #: ``(args, kwargs)``. Pickling at the call site makes a bad argument fail there.
    serializes = True

    #: Whether a sync task's code can be stopped from outside (a process can be killed).
    can_stop_sync_code = False

    #: Whether a cancelled async call reports back (``deliver``) once it has stopped
    #: running, so that its run can wait for that, as LangGraph waits for its tasks.
    reports_cancellation = False

    @abc.abstractmethod
    def submit(self, call: CallItem) -> None:
        """Run ``call`` and report through ``call.deliver`` exactly once."""

    def cancel(self, call: CallItem) -> None:  # noqa: B027 - optional hook
        """The caller cancelled ``call``: drop it if queued, stop it if it is async."""

    def stop(self, calls: list[CallItem]) -> None:
        """Stop ``calls`` now, running or not (Ctrl-C); their futures are cancelled."""
        for call in calls:
            call.future.cancel()

    def retry_later(self, call: CallItem, delay: float) -> None:
        """Submit ``call`` again after ``delay`` seconds, holding no thread meanwhile."""
        call_later(delay, lambda: self._resubmit(call))

    def _resubmit(self, call: CallItem) -> None:
        call.in_backoff = False
        if not call.claim():  # cancelled or stopped during the backoff: say so
            call.deliver(False, CANCELLED)
            return
        try:
            self.submit(call)
        except Exception as exc:  # the executor was shut down meanwhile
            call.resolve(False, exc)

    def start(self) -> Executor:
        """Make the executor ready ahead of the first call; returns ``self``."""
        return self

    def shutdown(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Release the executor's resources; a later call starts them again."""

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)
