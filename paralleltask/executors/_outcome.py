"""What a worker's end means to the parent: its outcomes decoded, its exit described.

Split from ``_pool.py`` (which keeps the bookkeeping): decoding a DONE's ``(status, blob)``
and delivering it (shared with the Dask executor), the errors of a crash, and how a
process is killed.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from .. import _buffers, _serde
from .._protocol import CANCELLED, NOT_LOADED, NOT_PICKLED, OK, RAISED
from ..errors import SerializationError, WorkerCrashedError
from . import base


def decode_outcome(call: base.Call, status: int, blob: Any) -> tuple[bool, Any]:
    """A worker's ``(status, blob)`` as ``deliver`` takes it: ``(True, value)`` or
    ``(False, exception)``, with a SerializationError where the bytes will not load."""
    name = call.task.name
    if status == OK:
        try:
            if type(blob) is _buffers.Mapped:  # large buffers in shared memory
                return True, _buffers.loads(blob)
            return True, _serde.loads(blob)
        except BaseException as exc:  # (a __setstate__ may raise anything)
            return False, SerializationError(
                f"Task {name!r}: its result could not be unpickled in the parent: "
                f"{type(exc).__name__}: {exc}",
                task=name,
            )
    if status == RAISED:
        try:
            return False, _serde.loads_exception(blob)
        except _serde.UnloadableException as lost:
            failure = lost.failure
            return False, SerializationError(
                f"Task {name!r} raised {lost.described}, an exception that could not be "
                f"unpickled in the parent: {type(failure).__name__}: {failure}\n"
                f"Traceback in the worker:\n{lost.traceback_text}",
                task=name,
            )
        except BaseException as exc:
            return False, SerializationError(
                f"Task {name!r} raised an exception that could not be unpickled in the "
                f"parent: {type(exc).__name__}: {exc}",
                task=name,
            )
    if status == NOT_LOADED:
        return False, SerializationError(
            f"Task {name!r}: its function or arguments could not be unpickled in the "
            f"worker: {blob}",
            task=name,
        )
    if status == NOT_PICKLED:
        type_name, _, error = blob.partition("|")
        return False, _serde.result_error(name, type_name, error)
    if status == CANCELLED:
        return False, base.CANCELLED
    raise AssertionError(f"unknown outcome status {status}")


def deliver_outcome(call: base.Call, status: int, blob: Any) -> None:
    """Decode a worker's ``(status, blob)`` and deliver it to ``call``, with the result's
    bytes (the cache and the checkpoint store them as they are; a result that came out
    of band has none: a store pickles it whole)."""
    ok, value = decode_outcome(call, status, blob)
    call.deliver(ok, value, blob if status == OK and type(blob) is bytes else None)


def kill(process) -> None:
    """SIGKILL ``process`` (loky's Popen has no ``kill()``); no error if already gone."""
    try:
        os.kill(process.pid, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def crash_error(call: base.Call, pid: int | None, exitcode: int | None) -> WorkerCrashedError:
    return WorkerCrashedError(
        f"Task {call.task.name!r}: the worker process running it (pid {pid}) died "
        f"with {describe_exit(exitcode)}. Likely causes: a segmentation fault in native "
        "code, a call to os._exit(), or the process being killed for using too much "
        "memory (the OOM killer sends SIGKILL). The pool has started a replacement.",
        task=call.task.name,
        exitcode=exitcode,
    )
