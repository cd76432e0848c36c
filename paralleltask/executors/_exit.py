"""The parent's exit: every live pool shut down, no worker waited on that is not killed.

At interpreter exit ``atexit`` runs ``shutdown_live_pools`` (after the interpreter has
joined every non-daemon thread, so no user thread still waits on a call). Two things
make that path hold whatever interrupts it (a second Ctrl-C a few ms after the first
lands there: 3 hangs in ~95 tries of an async script, before this module):

- ``forget_child``: multiprocessing's own exit handler (``util._exit_function``, also
  atexit, run after ours) joins every non-daemonic child in
  ``multiprocessing.process._children`` without a timeout. Had our shutdown been cut
  short, it would wait forever on a worker still running a call. The pool joins and
  kills its workers itself, so it takes them out of that set when it starts them.
  (They are not made daemonic instead: a daemonic process may not start children,
  and a task may need to.) A worker our shutdown never reached still exits: on pipe
  EOF or its parent watch, once this process is gone.
- the shutdown itself runs with SIGINT ignored (its waits are bounded: ``STOP_GRACE``)
  and, in a ``finally``, SIGKILLs every worker still running.
"""

from __future__ import annotations

import atexit
import multiprocessing.process
import signal
import threading
import traceback
import weakref
from typing import Any

#: Pools not shut down yet (weakly: an unshared pool goes with its handle).
live_pools: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_child(process: Any) -> None:
    """Keep multiprocessing's exit handler from joining ``process`` (see above)."""
    children = getattr(multiprocessing.process, "_children", None)
    if children is not None:
        children.discard(process)


def shutdown_live_pools() -> None:
    """Shut every live pool down without waiting for its calls; whatever happens in
    there, no worker is left running when this returns."""
    restore = _ignore_sigint()
    try:
        pools = list(live_pools)
        try:
            for pool in pools:
                try:
                    pool.shutdown(wait=False)
                except Exception:  # one pool's trouble must not spare another's workers
                    traceback.print_exc()
        finally:
            for pool in pools:
                pool.kill_workers()
    finally:
        restore()


def _ignore_sigint():
    """Ignore Ctrl-C until the returned function restores it (main thread only: where
    atexit runs). A SIGINT already caught but not yet handled is dropped too: CPython
    finds the handler changed and skips it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError, TypeError):
        return lambda: None

    def restore() -> None:
        try:
            signal.signal(signal.SIGINT, previous)
        except (ValueError, OSError, TypeError):
            pass

    return restore


atexit.register(shutdown_live_pools)
