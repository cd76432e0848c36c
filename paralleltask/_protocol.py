"""The messages on a worker's pipe: each a small pickled tuple whose first item is its kind.

Parent → worker::

    (CALL, [(call_id, fn_id, fn_blob | None, args_blob, is_async, run_id, run_blob,
             attempt), ...], forget)
        run these calls (a batch of one or more), sync ones in order; fn_blob is sent
        once per worker, later calls name fn_id only; run_blob is the run's pickled
        RunInfo (config, context, stream modes, retry policies), pickled once per run;
        forget: fn_ids to drop first, chosen by the parent's LRU of the functions this
        worker holds (executors/_known.py: never one a call it holds still needs)
    (CANCEL, call_id)       skip a call not started yet; cancel a running async one
                            (a running sync call is stopped by killing its worker)
    (STOP,)                 finish and exit (shutdown; a worker retired at a limit
                            gets it after its last DONE)
    (ANSWER, request_id, found, blob)
                            the answer to an ASK: found, and the value pickled

Worker → parent::

    (READY, pid)                            booted, initializer done
    (BOOT_FAILED, traceback_text)           the initializer raised (or would not
                                            unpickle); the worker exits
    (DONE, call_id, status, blob, seconds, rss)
                                            a call's outcome (statuses below), how long
                                            it ran (which sizes the prefetch) and the
                                            worker's RSS in bytes after it, or None when
                                            the pool has no max_memory_per_child
    (EVENT, call_id, mode, blob)            a stream chunk written while the call runs
                                            (custom chunks, nested calls' updates)
    (ASK, call_id, request_id, question, payload)
                                            a question about a nested call of call_id
                                            (a cache entry, a checkpointed result); the
                                            worker waits for the ANSWER
    (KEEP, call_id, what, payload)          a nested call's result to store (cache entry,
                                            checkpoint slot); no answer
    (STARTED, call_id)                      a call with a timeout starts running (its
                                            function and arguments are loaded): its
                                            clock starts
    (HEARTBEAT, call_id)                    progress of a call with an idle timeout
                                            (runtime.heartbeat(), stream-writer events)
"""

from __future__ import annotations

CALL = 1
CANCEL = 2
STOP = 3
ANSWER = 4

READY = 10
BOOT_FAILED = 11
DONE = 12
EVENT = 13
ASK = 14
KEEP = 15
HEARTBEAT = 16
STARTED = 17

# DONE statuses
OK = 0  #: blob is the pickled result
RAISED = 1  #: blob is an exception pickled by serde.dumps_exception
NOT_LOADED = 2  #: blob is text: the function or the arguments would not unpickle
NOT_PICKLED = 3  #: blob is text: the result would not pickle
CANCELLED = 4  #: the call was cancelled (skipped, or an async one stopped); blob is empty
