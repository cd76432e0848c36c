"""DaskExecutor on a local Dask cluster (two worker processes): the same programs, the
same results, errors, retries, streams, cache and checkpoints as on the process pool."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

distributed = pytest.importorskip("distributed")

from paralleltask import (  # noqa: E402
    CachePolicy,
    DaskExecutor,
    LMDBStore,
    MemoryStore,
    RetryPolicy,
    SerializationError,
    TaskTimeoutError,
    TimeoutPolicy,
    WorkerCrashedError,
    entrypoint,
    get_config,
    get_runtime,
    get_stream_writer,
    task,
)


@pytest.fixture(scope="module")
def cluster():
    import dask

    environ = dict(os.environ)  # LocalCluster sets OMP_NUM_THREADS & co. in this process
    # A dead worker fails its call at once (Dask's default retries it on 3 more workers).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,  # a killed worker logs at ERROR level: expected here
        )
    os.environ.clear()
    os.environ.update(environ)
    yield cluster
    cluster.close()
    os.environ.clear()  # a worker restarted by its nanny set them again
    os.environ.update(environ)


@pytest.fixture(scope="module")
def client(cluster):
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def dask_executor(client):
    executor = DaskExecutor(client).start()
    yield executor
    executor.shutdown()


def _mark(folder: str, name: str) -> None:
    Path(folder, name).touch()


@task
def hold(folder: str, name: str, seconds: float) -> str:
    """Sleep ``seconds``, then leave a mark named ``name`` in ``folder``."""
    time.sleep(seconds)
    _mark(folder, name)
    return name


def _marks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def square(x: int) -> int:
    return x * x


@given(st.lists(st.integers(-1000, 1000), max_size=12))
@settings(max_examples=15, deadline=None)
def test_parallel_result_equals_serial(dask_executor, xs):
    work = task(square)

    @entrypoint(executor=dask_executor)
    def job(xs: list[int]) -> list[int]:
        return [f.result() for f in [work(x) for x in xs]]

    assert job.invoke(xs) == [square(x) for x in xs]


def test_config_context_and_runtime_reach_a_task_on_a_dask_worker(dask_executor):
    @task
    def look() -> tuple:
        return (
            get_config()["configurable"]["user"],
            get_runtime().context,
            os.getpid() != parent,
        )

    parent = os.getpid()

    @entrypoint(executor=dask_executor)
    def job(_: None) -> tuple:
        return look().result()

    config = {"configurable": {"user": "ada"}}
    assert job.invoke(0, config, context={"tier": 2}) == ("ada", {"tier": 2}, True)


def test_custom_chunk_arrives_while_the_task_still_runs(dask_executor):
    @task
    def slow() -> str:
        get_stream_writer()("started")
        time.sleep(1.0)
        return "done"

    @entrypoint(executor=dask_executor)
    def job(_: None) -> str:
        return slow().result()

    arrivals = {}
    started = time.monotonic()
    for mode, chunk in job.stream(0, stream_mode=["custom", "updates"]):
        arrivals.setdefault(repr((mode, chunk)), time.monotonic() - started)
    custom, update = arrivals["('custom', 'started')"], arrivals["('updates', {'slow': 'done'})"]
    assert update - custom >= 0.5


def test_an_exception_keeps_its_type_message_and_worker_traceback(dask_executor):
    @task
    def fail(key: str) -> None:
        raise KeyError(key)

    @entrypoint(executor=dask_executor)
    def job(key: str) -> None:
        return fail(key).result()

    with pytest.raises(KeyError) as caught:
        job.invoke("missing")
    assert caught.value.args == ("missing",)
    notes = "\n".join(caught.value.__notes__)
    assert "Traceback in the worker" in notes and "raise KeyError(key)" in notes


def test_retries_are_decided_in_the_parent(dask_executor, tmp_path):
    @task(retry_policy=RetryPolicy(initial_interval=0.01, jitter=False, retry_on=OSError))
    def flaky(folder: str) -> int:
        attempts = len(os.listdir(folder)) + 1
        _mark(folder, f"attempt-{attempts}")
        if attempts < 3:
            raise OSError("not yet")
        return attempts

    @entrypoint(executor=dask_executor)
    def job(folder: str) -> int:
        return flaky(folder).result()

    assert job.invoke(str(tmp_path)) == 3
    assert _marks(tmp_path) == ["attempt-1", "attempt-2", "attempt-3"]


def test_async_tasks_run_and_are_timed_in_the_worker(dask_executor):
    @task
    async def negate(x: int) -> int:
        await asyncio.sleep(0.01)
        return -x

    @task(timeout=TimeoutPolicy(run_timeout=0.2))
    async def stuck() -> None:
        await asyncio.sleep(30)

    @entrypoint(executor=dask_executor, retry_policy=RetryPolicy(max_attempts=1))
    async def job(n: int) -> list[int]:
        values = await asyncio.gather(*[negate(i) for i in range(n)])
        try:
            await stuck()
        except TaskTimeoutError as exc:
            return [*values, exc.kind]
        return values

    assert asyncio.run(job.ainvoke(4)) == [0, -1, -2, -3, "run"]


def test_a_timeout_on_a_sync_task_is_refused(dask_executor):
    @task(timeout=1.0)
    def sync_timed() -> None:
        return None

    @entrypoint(executor=dask_executor)
    def job(_: None) -> None:
        return sync_timed().result()

    with pytest.raises(ValueError, match="DaskExecutor"):
        job.invoke(0)


def test_cache_hits_are_answered_in_the_parent(dask_executor, tmp_path):
    @task(cache_policy=CachePolicy())
    def costly(folder: str, x: int) -> int:
        _mark(folder, f"ran-{x}")
        return x + 1

    @entrypoint(executor=dask_executor, cache=MemoryStore())
    def job(xs: list[int]) -> list[int]:
        return [f.result() for f in [costly(str(tmp_path), x) for x in xs]]

    assert job.invoke([1, 2]) == [2, 3]
    assert job.invoke([1, 2, 3]) == [2, 3, 4]
    assert _marks(tmp_path) == ["ran-1", "ran-2", "ran-3"]


def test_a_failed_run_resumes_without_redoing_finished_calls(dask_executor, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    @task
    def step(folder: str, i: int, fail_at: int) -> int:
        if i == fail_at and not os.path.exists(os.path.join(folder, "fixed")):
            raise RuntimeError(f"step {i} failed")
        _mark(folder, f"step-{i}")
        return i

    @entrypoint(executor=dask_executor, checkpointer=LMDBStore(tmp_path / "store"))
    def job(n: int) -> list[int]:
        return [step(str(marks), i, 3).result() for i in range(n)]

    config = {"configurable": {"thread_id": "dask-resume"}}
    with pytest.raises(RuntimeError, match="step 3 failed"):
        job.invoke(5, config)
    assert _marks(marks) == ["step-0", "step-1", "step-2"]
    for name in _marks(marks):
        os.remove(marks / name)
    _mark(str(marks), "fixed")
    assert job.invoke(None, config) == [0, 1, 2, 3, 4]
    assert _marks(marks) == ["fixed", "step-3", "step-4"]  # 0-2 replayed, not re-run


def test_a_cancelled_call_that_dask_has_not_started_never_runs(dask_executor, tmp_path):
    @entrypoint(executor=dask_executor)
    def job(folder: str) -> tuple:
        busy = [hold(folder, f"busy-{i}", 0.5) for i in range(2)]  # both workers
        queued = hold(folder, "cancelled", 0.0)
        cancelled = queued.cancel()
        return cancelled, [f.result() for f in busy]

    assert job.invoke(str(tmp_path)) == (True, ["busy-0", "busy-1"])
    time.sleep(0.3)
    assert _marks(tmp_path) == ["busy-0", "busy-1"]


def test_a_dead_worker_fails_its_call_with_worker_crashed_error(dask_executor):
    @task
    def die() -> None:
        os._exit(3)

    @task
    def fine() -> str:
        return "fine"

    @entrypoint(executor=dask_executor, retry_policy=RetryPolicy(max_attempts=1))
    def job(_: None) -> str:
        with pytest.raises(WorkerCrashedError, match="die"):
            die().result()
        return fine().result()

    assert job.invoke(0) == "fine"


def test_a_result_that_will_not_pickle_fails_only_its_call(dask_executor):
    @task
    def make_lock() -> object:
        import threading

        return threading.Lock()

    @entrypoint(executor=dask_executor)
    def job(_: None) -> str:
        with pytest.raises(SerializationError, match="make_lock"):
            make_lock().result()
        return "still running"

    assert job.invoke(0) == "still running"


def test_a_task_called_inside_a_task_runs_in_the_dask_worker(dask_executor):
    @task
    def inner(x: int) -> int:
        return x + 1

    @task
    def outer(x: int) -> int:
        return inner(x).result() * 10

    @entrypoint(executor=dask_executor)
    def job(x: int) -> int:
        return outer(x).result()

    assert job.invoke(4) == 50


def test_an_entrypoint_invoked_inside_a_task_runs_inline_in_the_dask_worker(dask_executor):
    @task
    def leaf(x: int) -> int:
        return x + 1

    @entrypoint()  # the default executor: a process pool, if one were allowed here
    def inner(x: int) -> tuple[int, int]:
        from paralleltask.executors import process

        return leaf(x).result(), len(process._pools)

    @task
    def outer(x: int) -> tuple[int, int, int]:
        return (*inner.invoke(x), os.getpid())

    @entrypoint(executor=dask_executor)
    def job(x: int) -> tuple[int, int, int]:
        return outer(x).result()

    value, pools, pid = job.invoke(4)
    assert (value, pools) == (5, 0)  # no pool was started in the Dask worker
    assert pid != os.getpid()


def test_an_address_connects_a_client_of_its_own_and_shutdown_closes_it(cluster):
    executor = DaskExecutor(cluster.scheduler_address)

    @entrypoint(executor=executor)
    def job(x: int) -> int:
        return task(square)(x).result()

    try:
        assert job.invoke(7) == 49
        own = executor._client
        assert own.status == "running"
    finally:
        executor.shutdown()
    assert own.status == "closed"


@pytest.mark.parametrize(
    ("argument", "error", "message"),
    [
        ("", ValueError, "scheduler address"),
        (42, TypeError, "distributed.Client or a scheduler address"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_bad_arguments_are_refused_clearly(argument, error, message):
    with pytest.raises(error, match=message):
        DaskExecutor(argument)


def test_shutdown_without_waiting_cancels_what_dask_still_holds(client, tmp_path):
    executor = DaskExecutor(client)

    @entrypoint(executor=executor)
    def job(folder: str) -> list[str]:
        futures = [hold(folder, f"busy-{i}", 0.5) for i in range(2)]
        futures.append(hold(folder, "queued", 0.0))
        executor.shutdown(wait=False)
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=10))
            except concurrent.futures.CancelledError:
                outcomes.append("cancelled")
        return outcomes

    assert job.invoke(str(tmp_path)) == ["cancelled"] * 3
    time.sleep(0.8)  # the busy calls run on in Dask (it cannot stop them); the queued never
    assert "queued" not in _marks(tmp_path)
    assert client.status == "running"  # the client was passed in: it stays the caller's


def test_large_arguments_are_scattered_to_a_worker_not_sent_in_the_graph(client):
    import numpy as np

    executor = DaskExecutor(client, scatter_threshold=1 << 20).start()
    scattered = []
    scatter = client.scatter

    def counting_scatter(data, **kwargs):
        scattered.append(len(data))
        return scatter(data, **kwargs)

    client.scatter = counting_scatter
    try:

        @entrypoint(executor=executor)
        def body(arrays):
            return [f.result() for f in [total(a) for a in arrays]] + [total(np.ones(8)).result()]

        arrays = [np.full(1 << 18, float(i)) for i in range(3)]  # 2 MiB each
        assert body.invoke(arrays) == [a.sum() for a in arrays] + [8.0]
    finally:
        del client.scatter
        executor.shutdown()
    assert len(scattered) == 3 and min(scattered) >= 2 << 20  # the small call went as is


@task
def total(array):
    return float(array.sum())


@pytest.mark.parametrize("threshold", [-1, 1.5, "1MiB", True])
def test_a_bad_scatter_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="scatter_threshold"):
        DaskExecutor("tcp://127.0.0.1:8786", scatter_threshold=threshold)
