"""The messages on a worker's pipe: each a small pickled tuple whose first item is its kind.

Parent → worker::

    (CALL, call_id, fn_id, fn_blob | None, args_blob, is_async)
        run a task; fn_blob is sent once per worker, later calls name fn_id only
    (CANCEL, call_id)       cancel an async call (a sync one is stopped by killing the worker)
    (STOP,)                 finish and exit

Worker → parent::

    (READY, pid)                    booted, initializer done
    (BOOT_FAILED, traceback_text)   the initializer raised; the worker exits
    (DONE, call_id, status, blob)   a call's outcome, see the statuses below

Reserved for the issues that follow, on the same pipe: a worker's question about a
nested task call and the parent's answer, stream events and heartbeats while a call
runs, and batches of calls (a list of CALLs in one message).
"""

from __future__ import annotations

CALL = 1
CANCEL = 2
STOP = 3

READY = 10
BOOT_FAILED = 11
DONE = 12

# DONE statuses
OK = 0  #: blob is the pickled result
RAISED = 1  #: blob is an exception pickled by serde.dumps_exception
NOT_LOADED = 2  #: blob is text: the function or the arguments would not unpickle
NOT_PICKLED = 3  #: blob is text: the result would not pickle
CANCELLED = 4  #: the async call was cancelled; blob is empty
