"""What the dispatcher does with each message a worker sends: outcomes, stream chunks,
questions about nested calls, boot news.

A mixin of ``WorkerPool`` (split from ``_pool.py``, which keeps the bookkeeping); only
the dispatcher thread runs it. A worker's outcomes are handled as one batch: the worker
is refilled (one CALL) before the outcomes are decoded and their futures resolved.
"""

from __future__ import annotations

from .. import _buffers, _nested, _serde
from .._protocol import (
    ANSWER,
    ASK,
    BOOT_FAILED,
    DONE,
    DONES,
    EVENT,
    HEARTBEAT,
    KEEP,
    RAISED,
    READY,
    STARTED,
    STOP,
    Answer,
    Ask,
    BootFailed,
    Done,
    Event,
    Keep,
    Ready,
    Stop,
    dumps,
    loads,
)
from ..errors import SerializationError
from ._outcome import deliver_outcome, kill
from ._worker_handle import WorkerHandle


class MessagesMixin:
    """The handlers of ``WorkerPool``'s incoming messages (its lock, workers and books)."""

    def _receive_all(self, worker: WorkerHandle) -> None:
        """Read every message the worker has sent; handle its outcomes as one batch."""
        outcomes = []
        conn = worker.conn
        try:
            while not worker.eof and worker.readable():
                message = loads(conn.recv_bytes())
                kind = message.kind
                if kind == DONE:
                    if type(message.blob) is tuple:  # a result out of band: its fds follow
                        try:
                            fds = _buffers.recv_fds(worker.sock, message.blob[2])
                        except _buffers.BrokenStream:
                            kill(worker.process)  # its stream cannot be read on: it goes
                            raise
                        message = _mapped_result(message, fds)
                    outcomes.append(message)
                elif kind == DONES:  # several in one message (a worker's short calls)
                    outcomes.extend(message.items)
                elif kind == EVENT:
                    self._on_event(message)
                    if self._timers:
                        self._progress(message.call_id, heartbeat=False)
                elif kind == HEARTBEAT:
                    self._progress(message.call_id, heartbeat=True)
                elif kind == STARTED:
                    self._started(message.call_id)
                elif kind == ASK:
                    self._on_question(worker, message)
                elif kind == KEEP:
                    self._on_keep(message)
                else:
                    if kind == READY and message.progress:  # its progress word follows
                        (fd,) = _buffers.recv_fds(worker.sock, 1)
                        worker.progress = _buffers.read_progress(fd)
                    self._on_status(worker, message)
        except (EOFError, OSError):
            with self._lock:  # the worker is exiting; its sentinel will say so
                worker.eof = True
                self._generation += 1
        if outcomes:
            self._on_done(worker, outcomes)

    def _on_event(self, event: Event) -> None:
        """A chunk from a running call: to its run's stream, now (before its outcome)."""
        call, _ = self._running.get(event.call_id, (None, None))
        if call is not None and call.run.sink is not None:
            call.run.sink.emit(event.mode, _serde.loads(event.blob))

    def _on_question(self, worker: WorkerHandle, ask: Ask) -> None:
        """A running call asks about one of its nested calls (cache, checkpoint)."""
        call, _ = self._running.get(ask.call_id, (None, None))
        try:
            if call is None:
                found, blob = False, None
            else:
                found, blob = _nested.answer(call, ask.question, ask.payload)
        except Exception:  # a store error: the nested call runs, as on a miss
            found, blob = False, None
        worker.send(dumps(Answer(ANSWER, ask.request_id, found, blob)))

    def _on_keep(self, keep: Keep) -> None:
        call, _ = self._running.get(keep.call_id, (None, None))
        if call is not None:
            _nested.keep(call, keep.what, keep.payload)

    def _on_status(self, worker: WorkerHandle, message: Ready | BootFailed) -> None:
        with self._lock:
            if message.kind == READY:
                worker.booted = True
                self._booting -= 1
                self._boot.booted()
                self._booted.notify_all()
            elif message.kind == BOOT_FAILED:  # it exits next: _on_worker_exit counts it
                worker.boot_error = message.traceback_text

    def _on_done(self, worker: WorkerHandle, outcomes: list[Done]) -> None:
        finished = []
        with self._lock:
            for outcome in outcomes:
                call_id, rss = outcome.call_id, outcome.rss
                if self._timers:
                    self._timers.pop(call_id, None)
                if rss is not None and rss > self._max_memory and not worker.retiring:
                    self._retire_locked(worker)  # the call that pushed it over returns
                held = self._running.pop(call_id, None)
                if held is None:
                    worker.unwinding.pop(call_id, None)  # a timed-out call has stopped
                    continue  # (or one abandoned by a shutdown meanwhile)
                call, _ = held
                if outcome.released:  # its argument segments can take the next buffers
                    for segment in call.payload.segments:
                        segment.released()
                if call.task.is_async:
                    del worker.async_calls[call_id]
                else:
                    worker.remove_sync_call(call)
                    self._run_times.record(call.task.task_id, outcome.seconds)
                # (NOT_LOADED: the worker keeps what it could not load, and says why at
                # every call: the two books of known functions stay the same.)
                finished.append((call, outcome.status, outcome.blob))
            message = self._refill_locked(worker)
            stop = worker.retiring and self._stop_if_retired_locked(worker)
            if self.closing and not (self._running or self._pending or self._quarantine):
                self._drained.notify_all()
        if message is not None:
            worker.send_locked(message)
        if stop:  # after its last DONE: it exits, and the dispatcher sees it go
            worker.send(dumps(Stop(STOP)))
        for call, status, blob in finished:
            deliver_outcome(call, status, blob)


def _mapped_result(message: Done, fds: list[int]) -> Done:
    """An out-of-band result with its segments mapped; one that cannot be mapped here
    (no address space left, say) is the call's error, not the worker's end: the
    worker's next messages must still be read."""
    try:
        return message._replace(blob=_buffers.receive(message.blob, fds, writable=True))
    except OSError as exc:
        error = SerializationError(
            f"the result of a call (call id {message.call_id}) came back through shared "
            f"memory but could not be mapped in the parent: {type(exc).__name__}: {exc}"
        )
        return message._replace(status=RAISED, blob=_serde.dumps_exception(error))
