"""A worker's lifeline to its parent, on the worker's side.

- ``watch_parent``: the worker exits when its parent dies, even while its pipe is held
  open by another process;
- ``leave_if_forked``: a process forked inside a task ends when it returns into
  paralleltask's code, instead of running a worker loop that has no reader thread.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time

#: How often the parent watch polls ``getppid()`` where no pidfd can be waited on.
PARENT_POLL = 0.25


def watch_parent(parent_pid: int) -> None:
    """Exit when the parent dies, even while the pipe stays open.

    Pipe EOF is not enough: a process the parent forked (``os.fork``, a fork-context
    multiprocessing child) inherits the parent's end of every worker's pipe, so a worker
    would never see EOF while that process lives. ``PR_SET_PDEATHSIG`` is not used: it
    fires when the *thread* that forked the worker exits, not the process, and workers
    are started from user threads and the dispatcher: a worker started from a short-lived
    thread would be killed while its parent lives on. Instead one daemon thread waits on
    a pidfd of the parent (Linux 5.3+: readable once it has exited, no polling), else
    polls ``getppid()``. loky starts workers with fork+exec from this very parent, so
    ``parent_pid`` (the parent's own pid, sent at spawn) is our ``getppid()`` unless the
    parent is already gone.
    """
    if os.name != "posix":
        return  # Windows does not re-parent orphans: getppid() would never change
    try:
        pidfd = os.pidfd_open(parent_pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or the parent is gone already
        pidfd = None
    # Checked after pidfd_open: if the parent is still our parent now, the pidfd is of
    # it (not of a process that reused its pid after it died).
    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(
        target=_wait_for_parent,
        args=(parent_pid, pidfd),
        name="paralleltask-parent-watch",
        daemon=True,
    ).start()


def _wait_for_parent(parent_pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])
    else:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL)
    os._exit(0)  # nobody will read our results; a running call dies with us


def leave_if_forked(pid: int, code: int) -> None:
    """A task forked this process and the child returned into paralleltask's code: it
    has no reader thread and must not write on the worker's pipe, so it ends here
    (its buffered output flushed, as a Python process's at exit)."""
    if os.getpid() == pid:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)
