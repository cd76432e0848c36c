"""DaskExecutor: task calls on a Dask distributed cluster, when one machine is not enough.

Everything but the compute stays in the parent, as with the process pool: retries and
their backoff, the cache, checkpoints, streams. A call becomes one Dask task running
:func:`._dask_call.run_call`; its Dask future's completion resolves the caller's future,
and stream chunks written while it runs come back as Dask events on a topic of this
executor's. ``distributed`` is imported on first use only.
"""

from __future__ import annotations

import functools
import threading
import uuid
from typing import Any

from .. import _serde
from ..errors import WorkerCrashedError
from ._dask_call import run_call
from ._outcome import deliver_outcome
from .base import CANCELLED, Call, Executor
from .process import check_picklable


class DaskExecutor(Executor):
    """Runs task calls on a Dask distributed cluster.

    ``client_or_address`` is a ``distributed.Client`` (used as it is, and left open at
    :meth:`shutdown`) or a scheduler address such as ``"tcp://10.0.0.5:8786"`` (a client
    of our own is connected on first use and closed at :meth:`shutdown`). The workers need
    paralleltask installed, and the modules of tasks that are not defined in ``__main__``.

    Differences from the process pool: a sync task cannot be stopped once Dask runs it,
    so ``timeout=`` on a sync task is refused (async tasks are timed in the worker);
    cancelling a call Dask has not started means it never runs, while a running one runs
    to its end and its outcome is dropped; a worker that dies makes Dask run its calls
    elsewhere, and a call whose workers died ``distributed.scheduler.allowed-failures``
    + 1 times fails with :class:`WorkerCrashedError`; nested calls (a task called inside
    a task) run in the same Dask worker, without the run's cache or checkpoints.

    A call whose pickled arguments reach ``scatter_threshold`` bytes (default 1 MiB;
    None: never) sends them with ``client.scatter``, straight to a worker, instead of
    inside the task graph through the scheduler.
    """

    serializes = True
    can_stop_sync_code = False
    reports_cancellation = False

    def __init__(self, client_or_address: Any, *, scatter_threshold: int | None = 1 << 20) -> None:
        if isinstance(client_or_address, str):
            if not client_or_address:
                raise ValueError("DaskExecutor needs a scheduler address, got ''")
            self.address: str | None = client_or_address
            self._client: Any = None
        elif callable(getattr(client_or_address, "submit", None)) and hasattr(
            client_or_address, "subscribe_topic"
        ):
            self.address = None
            self._client = client_or_address
        else:
            raise TypeError(
                "DaskExecutor takes a distributed.Client or a scheduler address string "
                f"such as 'tcp://host:8786', got {type(client_or_address).__name__}"
            )
        if scatter_threshold is not None and (
            isinstance(scatter_threshold, bool)
            or not isinstance(scatter_threshold, int)
            or scatter_threshold < 0
        ):
            raise ValueError(
                f"scatter_threshold is a number of bytes (>= 0) or None, got {scatter_threshold!r}"
            )
        # Calls whose pickled arguments are this large send them with client.scatter:
        # straight to a worker, not inside the task graph through the scheduler (Dask's
        # advice for large arguments: "Large object ... detected in task graph").
        self.scatter_threshold = scatter_threshold
        self._owns_client = self._client is None
        self._token = uuid.uuid4().hex  # names this executor's tasks, runs and events
        self._topic = f"paralleltask-{self._token}"
        self._subscribed = False
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Call, Any]] = {}  # call_id -> (call, dask future)

    # -- the client -----------------------------------------------------------------

    def _connect(self) -> Any:
        client = self._client
        if client is not None and self._subscribed:
            return client
        with self._lock:
            if self._client is None:
                from distributed import Client

                self._client = Client(self.address, set_as_default=False)
            if not self._subscribed:
                self._client.subscribe_topic(self._topic, self._on_event)
                self._subscribed = True
            return self._client

    def start(self) -> DaskExecutor:
        """Connect to the cluster now (and wait until it is reachable); returns ``self``."""
        self._connect()
        return self

    # -- calls ----------------------------------------------------------------------

    def submit(self, call: Call) -> None:
        check_picklable(call)  # here, so a failure is the caller's
        client = self._connect()
        task, info = call.task, call.run.info
        topic = self._topic if info.worker_modes() else None
        payload = call.payload
        if self.scatter_threshold is not None and len(payload) >= self.scatter_threshold:
            # A future of the bytes, held by the task that needs them: Dask frees them
            # once that task and this reference are gone.
            payload = client.scatter(payload, hash=False)
        future = client.submit(
            run_call,
            self._token,
            task.task_id,
            task.pickled(),
            info.run_id,
            info.pickled(),
            payload,
            call.call_id,
            topic,
            call.attempt(),
            key=f"{task.name}-{uuid.uuid4().hex}",
            pure=False,
        )
        self._running[call.call_id] = (call, future)
        future.add_done_callback(functools.partial(self._finished, call))

    def _finished(self, call: Call, future: Any) -> None:
        """A call's Dask future is done (Dask's callback thread): resolve ours."""
        self._running.pop(call.call_id, None)
        status = future.status
        if status == "cancelled":
            call.deliver(False, CANCELLED)
            return
        if not call.claim():  # the caller cancelled it meanwhile: its outcome is dropped
            call.deliver(False, CANCELLED)
            return
        if status == "finished":
            status, blob = future.result()  # as a pool worker's DONE has them
            deliver_outcome(call, status, blob)
        else:
            call.deliver(False, _dask_error(call, future.exception()))

    def _on_event(self, event: tuple[float, dict]) -> None:
        """A chunk from a running call (Dask's event loop thread): to its run's stream."""
        message = event[1]
        entry = self._running.get(message["call"])
        if entry is not None and entry[0].run.sink is not None:
            entry[0].run.sink.emit(message["mode"], _serde.loads(message["chunk"]))

    def cancel(self, call: Call) -> None:
        entry = self._running.get(call.call_id)
        if entry is not None:
            entry[1].cancel()

    def shutdown(self, wait: bool = True) -> None:
        """Drop the calls still queued or running (``wait=False``) or wait for them;
        close the client if this executor connected it."""
        running = list(self._running.values())
        if running and wait:
            from distributed import wait as dask_wait

            dask_wait([future for _, future in running])
        elif running:
            self._client.cancel([future for _, future in running])
        with self._lock:
            client, subscribed = self._client, self._subscribed
            self._subscribed = False
            if self._owns_client:
                self._client = None
        if client is not None and subscribed and client.status == "running":
            client.unsubscribe_topic(self._topic)
        if client is not None and self._owns_client:
            client.close()

    def __repr__(self) -> str:
        where = self.address if self.address is not None else repr(self._client)
        return f"DaskExecutor({where})"


def _dask_error(call: Call, error: BaseException) -> BaseException:
    """A failure Dask reports itself (ours come back as outcomes): a dead worker becomes
    WorkerCrashedError, as on the process pool."""
    if type(error).__name__ == "KilledWorker":
        return WorkerCrashedError(
            f"Task {call.task.name!r}: the Dask workers running it died (Dask ran it again "
            f"on another worker each time, up to its allowed-failures): {error}. Likely "
            "causes: a segmentation fault in native code, a call to os._exit(), or a "
            "worker killed for using too much memory.",
            task=call.task.name,
        )
    return error
