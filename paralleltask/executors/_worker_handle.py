"""The parent's view of one worker process: its pipe, the calls it holds, its state.

Split from ``_pool.py``: every part of ``WorkerPool`` reads and changes these books
under the pool lock; writes on the pipe go under the handle's own ``send_lock``.
"""

from __future__ import annotations

import collections
import select
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .. import _buffers
from ._known import KnownFunctions
from ._outcome import kill
from .base import Call

#: How long shutdown() lets a worker exit on STOP before killing it.
STOP_GRACE = 5.0


class Outgoing(NamedTuple):
    """A message followed by the descriptors of its out-of-band segments."""

    data: bytes
    segments: list  # of _buffers.Segment, kept open until sent


class WorkerHandle:
    """The parent's view of one worker process."""

    __slots__ = (
        "async_calls",
        "boot_error",
        "booted",
        "calls_left",
        "conn",
        "eof",
        "exclusive",
        "killed",
        "known_functions",
        "process",
        "progress",
        "readable",
        "retiring",
        "send_lock",
        "sock",
        "stop_sent",
        "sync_calls",
        "unwinding",
    )

    def __init__(self, process, conn, calls_left: int | None) -> None:
        self.process = process
        self.conn = conn
        # Whether a message waits on the pipe: a poll object made once (0.25 µs a
        # check), not conn.poll(), which builds a selector per call (2.1 µs): the
        # dispatcher checks once per message it reads.
        self.readable = _poller(conn)
        # Its progress word (READY brings it): the id of the sync call it last started.
        self.progress = None
        # Out-of-band segments' descriptors go through this (a dup of the pipe's socket)
        self.sock = _buffers.socket_of(conn) if _buffers.SUPPORTED else None
        self.send_lock = threading.Lock()
        self.sync_calls: collections.deque[Call] = collections.deque()
        self.async_calls: dict[int, Call] = {}
        self.known_functions = KnownFunctions()
        self.booted = False
        self.boot_error: str | None = None  # its BOOT_FAILED traceback
        self.eof = False
        self.killed = False  # by us, to stop a call: its other calls are innocent
        self.exclusive = False  # running one suspect of a crash, alone
        # Calls it may still be given (max_tasks_per_child), None: no limit. A worker
        # at a limit is retiring: no more calls, STOP after its last DONE, and its
        # replacement already started (so it is never replaced again when it exits).
        self.calls_left = calls_left
        self.retiring = False
        self.stop_sent = False
        # Async calls timed out and cancelled, not yet reported stopped: call_id -> the
        # time after which the worker is deemed wedged (a loop that never yields).
        self.unwinding: dict[int, float] = {}

    def send_locked(self, data: bytes | Outgoing) -> None:
        """Write ``data`` (and the descriptors an Outgoing carries, right after it: the
        worker reads them next); the caller holds ``send_lock``, released here."""
        try:
            if type(data) is bytes:
                self.conn.send_bytes(data)
            else:
                self.conn.send_bytes(data.data)
                try:
                    _buffers.send_fds(self.sock, [s.fd for s in data.segments])
                except OSError:
                    # The message is out, its descriptors are not: the worker would
                    # wait for them and read the next message as them. It must go (its
                    # calls are re-queued or fail as a crash's).
                    kill(self.process)
                    raise
        except OSError:
            pass  # the worker died; its sentinel tells the dispatcher, which re-queues
        finally:
            self.send_lock.release()

    def send(self, data: bytes) -> None:
        self.send_lock.acquire()
        self.send_locked(data)

    def load(self) -> int:
        # A worker still unwinding a cancelled call may have a blocked event loop.
        return len(self.async_calls) + len(self.sync_calls) + 1000 * len(self.unwinding)

    def remove_sync_call(self, call: Call) -> None:
        # Outcomes come back in the order the worker ran the calls: almost always the head.
        if self.sync_calls and self.sync_calls[0] is call:
            self.sync_calls.popleft()
        else:
            self.sync_calls.remove(call)


def _poller(conn) -> Callable[[], bool]:
    if not hasattr(select, "poll"):  # (Windows)
        return conn.poll
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return lambda: bool(poller.poll(0))


def send_all(sends: list) -> None:
    """Send ``(worker, message)`` pairs whose send locks are held (see _assign_locked)."""
    for worker, message in sends:
        worker.send_locked(message)


def reap(workers: list[WorkerHandle]) -> None:
    """Wait (``STOP_GRACE`` in all) for stopped workers to exit, kill those that do
    not, and close their pipes."""
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            kill(worker.process)
            worker.process.join(1.0)
        worker.conn.close()
        if worker.sock is not None:
            worker.sock.close()
        if worker.progress is not None:
            worker.progress.close()
