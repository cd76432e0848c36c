"""Workers that die before they boot: replaced again, with a backoff, until it is hopeless.

A worker can die before it sends READY for two kinds of reasons:

- its *own* start failed: the initializer raised, or unpickling it failed (an import):
  the worker sends BOOT_FAILED with the traceback and exits. Doing the same again will
  most likely fail the same way: after ``BOOT_FAILURES_TOLERATED`` in a row the pool
  gives up, and the calls waiting for a worker fail with that traceback;
- something else killed it (the OOM killer under memory pressure SIGKILLs fresh
  processes too, a supervisor, a user's ``kill``) or it died without a word (a crash in
  native code while starting). It is replaced again after a short backoff
  (``FIRST_BACKOFF``, doubling to ``MAX_BACKOFF``); only after
  ``EARLY_DEATHS_TOLERATED`` such deaths in a row does the pool give up, failing the
  waiting calls with ``WorkerCrashedError`` (retry policies retry it).

Any READY resets both counts. A pool that gave up is not broken for good: its next
call (or ``start()``) starts workers again (``reset``). Only calls that no worker can
serve are failed: while a booted worker lives, they wait for it.
"""

from __future__ import annotations

from ..errors import WorkerCrashedError

#: BOOT_FAILED in a row (an initializer that raises) before the pool gives up.
BOOT_FAILURES_TOLERATED = 3
#: Deaths before READY in a row, without BOOT_FAILED (killed, crashed), before it gives up.
EARLY_DEATHS_TOLERATED = 10
#: Backoff before replacing a worker that died before it booted; doubles each time.
FIRST_BACKOFF = 0.01
MAX_BACKOFF = 1.0


class BootRecord:
    """How the pool's recent worker starts went (the pool lock guards it)."""

    __slots__ = ("deaths", "exitcode", "failures", "gave_up", "last")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.failures = 0  # BOOT_FAILED in a row
        self.deaths = 0  # other deaths before READY in a row
        self.last = ""  # what the last early death was, for the errors
        self.exitcode: int | None = None
        self.gave_up = False

    def booted(self) -> None:
        self.failures = self.deaths = 0

    def exited_early(self, traceback_text: str | None, exitcode: int | None, described: str):
        """A worker died before READY (not killed by the pool itself). Returns the delay
        before its replacement starts, or None: give up (``gave_up`` is then True)."""
        self.exitcode = exitcode
        if traceback_text is not None:
            self.failures += 1
            self.last = f"a worker's start failed (its initializer raised):\n{traceback_text}"
        else:
            self.deaths += 1
            self.last = f"a worker exited with {described} before it booted"
        if self.failures >= BOOT_FAILURES_TOLERATED or self.deaths >= EARLY_DEATHS_TOLERATED:
            self.gave_up = True
            return None
        tries = self.failures + self.deaths
        return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (tries - 1))

    def start_error(self) -> RuntimeError:
        """What ``start()`` raises once the pool gave up."""
        return RuntimeError(
            f"the process pool cannot start: {self.last}\n(the next call or start() tries again)"
        )

    def error_for(self, name: str) -> Exception:
        """The error of a call that waited for a worker when the pool gave up."""
        if self.failures >= BOOT_FAILURES_TOLERATED:
            return RuntimeError(
                f"Task {name!r} cannot run: the process pool cannot start: {self.last}\n"
                f"({self.failures} workers in a row failed to start; the next call tries again)"
            )
        return WorkerCrashedError(
            f"Task {name!r}: no worker of the pool could start: {self.deaths} in a row died "
            f"before they booted ({self.last}). Likely cause: the OOM killer, under memory "
            "pressure. The next call starts workers again.",
            task=name,
            exitcode=self.exitcode,
        )
