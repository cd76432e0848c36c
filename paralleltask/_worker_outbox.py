"""A worker's way back to the parent: every message it writes, and its held DONEs.

A mixin of ``_worker._Worker`` (its pipe, send lock, inbox and progress word). Every
message goes under one lock; a sync call's in-band DONE may be held while more calls
wait in the inbox and go with others as one ``Dones`` message (see :meth:`Outbox._send_done`).
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import _buffers, _serde
from ._protocol import NOT_PICKLED, OK, RAISED, dumps, dumps_dones, wire_done

#: Held Dones (see Outbox._send_done): at most this many in one message, the first held
#: at most this long, and only while the next call's function last ran shorter than this.
DONES_HELD = 64
DONES_AGE = 0.002
SHORT_CALL = 0.0005


class Outbox:
    """The sending half of ``_Worker``."""

    # (set by _Worker.__init__ and serve)
    conn: Any
    pid: int
    sock: Any
    send_lock: Any
    inbox: Any
    held: list
    held_since: float
    progress: Any
    buffer_threshold: int | None
    rss: Any

    def send(self, message: tuple, fds: tuple[int, ...] = ()) -> None:
        """Write ``message`` (a _protocol type, or wire_done's tuple) to the parent, and
        the descriptors of its out-of-band segment right after it; the Dones held back
        (see :meth:`_send_done`) go first, so the parent reads everything in order."""
        if os.getpid() != self.pid:  # a child forked by a task: the pipe is not its own
            raise RuntimeError(
                "a process forked inside a task cannot use paralleltask's channel (stream "
                "writer, heartbeat, nested task calls): only the worker itself can"
            )
        data = dumps(message)
        try:
            with self.send_lock:
                if self.held:
                    self._flush_locked()
                self.conn.send_bytes(data)
                if fds:
                    _buffers.send_fds(self.sock, list(fds))
        except OSError:  # the parent is gone (killed): exit quietly, as on EOF
            os._exit(0)

    def _send_done(self, wire: tuple) -> None:
        """A call's in-band Done: sent now, or held while more calls wait in the inbox
        (each one's Done in a message of its own costs the parent a read, a wake-up and
        a message's handling: ~2-4 µs of its dispatcher per call). Held Dones go with
        the next message, when the inbox is empty, when DONES_HELD are held, when the
        first has waited DONES_AGE seconds, or before a call that is not known to be
        short starts (see serve)."""
        try:
            with self.send_lock:
                held = self.held
                if not held:
                    if self.progress is None or self.inbox.empty():
                        self.conn.send_bytes(dumps(wire))  # (the one-at-a-time path)
                        return
                    self.held_since = time.perf_counter()
                held.append(wire)
                if (
                    len(held) >= DONES_HELD
                    or self.inbox.empty()
                    or time.perf_counter() - self.held_since >= DONES_AGE
                ):
                    self._flush_locked()
        except OSError:  # the parent is gone (killed): exit quietly, as on EOF
            os._exit(0)

    def _flush_locked(self) -> None:
        """Send the held Dones as one message (the send lock held)."""
        held, self.held = self.held, []
        self.conn.send_bytes(dumps(held[0]) if len(held) == 1 else dumps_dones(held))

    def flush_held(self) -> None:
        if self.held:
            try:
                with self.send_lock:
                    if self.held:
                        self._flush_locked()
            except OSError:
                os._exit(0)

    # -- outcomes -------------------------------------------------------------------

    def _send_value(self, call_id: int, value: Any, seconds: float) -> None:
        blob = self._result_blob(call_id, value, seconds)
        if blob is not None:
            self._send_result(call_id, blob, seconds, False)

    def _result_blob(self, call_id: int, value: Any, seconds: float) -> Any:
        """The result pickled (bytes, or an OutOfBand); None if it would not pickle
        (then NOT_PICKLED is sent)."""
        try:
            if self.buffer_threshold is None:
                return _serde.dumps(value)
            return _buffers.dumps_value(value, self.buffer_threshold)
        except Exception as exc:
            error = f"{type(value).__name__}|{type(exc).__name__}: {exc}"
            self._send_text(call_id, NOT_PICKLED, error, seconds)
            return None

    def _send_result(self, call_id: int, blob: Any, seconds: float, released: bool) -> None:
        rss = self.rss() if self.rss else None
        if type(blob) is bytes:  # (_done, inlined: the hot path)
            self._send_done(wire_done(call_id, OK, blob, seconds, rss, released))
            return
        try:  # large buffers: the parent maps the segment we send
            wire = wire_done(call_id, OK, blob.wire(), seconds, rss, released)
            self.send(wire, tuple(blob.fds()))
        finally:
            for segment in blob.segments:
                segment.close()  # in flight, the kernel holds it; mapped, the parent does

    def _send_exception(self, call_id: int, exc: BaseException, seconds: float) -> None:
        if self.buffer_threshold is not None and _buffers.wrote_to_read_only(exc):
            exc.add_note(_buffers.READ_ONLY_NOTE)
        self._done(call_id, RAISED, _serde.dumps_exception(exc), seconds)

    def _send_text(self, call_id: int, status: int, text: str, seconds: float = 0.0) -> None:
        self._done(call_id, status, text, seconds)

    def _done(self, call_id: int, status: int, blob: Any, seconds: float) -> None:
        """DONE, with this process's RSS when the pool retires workers by memory."""
        rss = self.rss() if self.rss else None
        self.send(wire_done(call_id, status, blob, seconds, rss, False))
