"""Executors: the process pool's lifecycle, sharing, environment and initializer."""

from __future__ import annotations

import os

import pytest

from paralleltask import InlineExecutor, ProcessExecutor, ThreadExecutor, entrypoint, task


@task
def worker_facts(names):
    return os.getpid(), {name: os.environ.get(name) for name in names}


@task
def initialized_value(_):
    return os.environ.get("PT_TEST_INITIALIZED")


def set_marker(value):
    os.environ["PT_TEST_INITIALIZED"] = value


def fail_to_start():
    raise RuntimeError("initializer exploded")


def facts_on(executor, names=()):
    @entrypoint(executor=executor)
    def main(_):
        return worker_facts(list(names)).result()

    return main.invoke(0)


def test_handles_with_same_settings_share_one_pool():
    first, second = ProcessExecutor(), ProcessExecutor()
    assert first._pool() is second._pool()
    assert ProcessExecutor(max_workers=1)._key != first._key


def test_a_later_change_to_the_environment_does_not_make_a_second_pool(monkeypatch):
    """Dask's LocalCluster sets OMP_NUM_THREADS & co. in the parent: handles made after
    that must still find the pool the handles made before it use."""
    pool = ProcessExecutor()._pool()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert ProcessExecutor()._pool() is pool


def test_default_pool_is_reused_across_invokes():
    pids = {facts_on(None)[0] for _ in range(20)}
    assert len(pids) <= ProcessExecutor().max_workers


def test_blas_threads_pinned_to_one_unless_overridden():
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    if any(name in os.environ for name in names):
        pytest.skip("the test environment sets these variables itself")
    _, env = facts_on(None, names)
    assert env == dict.fromkeys(names, "1")
    with ProcessExecutor(max_workers=1, env={"OMP_NUM_THREADS": "4"}) as executor:
        _, env = facts_on(executor, names)
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "1"


def test_context_manager_starts_and_shuts_down_a_separate_pool():
    default_pids = {facts_on(None)[0] for _ in range(4)}
    with ProcessExecutor(max_workers=1) as executor:
        pool = executor._pool()
        pid = facts_on(executor)[0]
        assert pid not in default_pids
        assert {facts_on(executor)[0] for _ in range(5)} == {pid}
    assert pool.closing
    assert not ProcessExecutor()._pool().closing  # the default pool is untouched
    assert facts_on(None)[0] in default_pids


def test_shutdown_then_next_call_starts_a_fresh_pool():
    executor = ProcessExecutor(max_workers=1)
    first = facts_on(executor)[0]
    executor.shutdown()
    second = facts_on(executor)[0]
    executor.shutdown()
    assert first != second


def test_start_is_idempotent_and_returns_the_executor():
    executor = ProcessExecutor()
    assert executor.start() is executor
    assert executor.start() is executor


def test_initializer_runs_in_each_worker():
    with ProcessExecutor(max_workers=1, initializer=set_marker, initargs=("yes",)) as executor:

        @entrypoint(executor=executor)
        def main(_):
            return initialized_value(0).result()

        assert main.invoke(0) == "yes"


def set_marker_from_list(values):
    os.environ["PT_TEST_INITIALIZED"] = values[0]


def test_handles_with_unhashable_settings_get_their_own_pool_and_release_it():
    import gc

    from paralleltask.executors import process

    before = len(process._pools)
    for value in ("a", "b", "c"):  # a list in initargs: no key to share a pool by
        executor = ProcessExecutor(
            max_workers=1, initializer=set_marker_from_list, initargs=([value],)
        )
        assert facts_on_marker(executor) == value  # never a dropped handle's stale pool
        del executor
        gc.collect()
        assert len(process._pools) == before  # the dropped handle's pool is shut down


def facts_on_marker(executor):
    @entrypoint(executor=executor)
    def main(_):
        return initialized_value(0).result()

    return main.invoke(0)


def test_failing_initializer_is_a_clear_error():
    executor = ProcessExecutor(max_workers=1, initializer=fail_to_start)
    try:
        with pytest.raises(RuntimeError, match="initializer exploded"):
            executor.start()
    finally:
        executor.shutdown(wait=False)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_max_workers_refused(bad):
    with pytest.raises(ValueError, match="max_workers"):
        ProcessExecutor(max_workers=bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_max_workers_refused(bad):
    with pytest.raises(ValueError, match="max_workers must be a positive int"):
        ThreadExecutor(max_workers=bad)


def test_local_executors_as_context_managers():
    with ThreadExecutor(2) as threads, InlineExecutor() as inline:
        assert facts_on(threads)[0] == os.getpid()
        assert facts_on(inline)[0] == os.getpid()


@task
def double(x):
    return 2 * x


@pytest.mark.timeout(60)
def test_an_entrypoint_invoked_in_a_thread_pool_task_runs_inline_not_on_the_busy_pool():
    threads = ThreadExecutor(max_workers=1)  # its one thread runs the outer task

    @entrypoint(executor=threads)
    def inner(x):
        return double(x).result()

    @task
    def outer(x):
        return inner.invoke(x) + 1

    @entrypoint(executor=threads)
    def main(n):
        return [f.result() for f in [outer(i) for i in range(n)]]

    assert main.invoke(3) == [1, 3, 5]
    threads.shutdown()


@task
def start_a_pool_here(_):
    try:
        ProcessExecutor(max_workers=1)._pool()  # submit refuses; start() is a no-op
    except RuntimeError as error:
        return str(error)
    return "started"


def test_no_pool_is_ever_started_inside_a_worker():
    @entrypoint()
    def main(_):
        return start_a_pool_here(0).result()

    assert "never starts a process pool inside a worker" in main.invoke(0)


def test_a_run_context_that_will_not_pickle_fails_at_the_call():
    import threading

    from paralleltask import SerializationError

    @entrypoint()
    def main(_):
        return worker_facts([]).result()

    with pytest.raises(SerializationError, match="its config, context or retry policies"):
        main.invoke(0, context={"lock": threading.Lock()})
    assert main.invoke(0)[0] != os.getpid()  # the pool is untouched


@task
def hold_the_worker(seconds):
    import time

    time.sleep(seconds)
    return "held"


@task
async def nap(seconds):
    import asyncio
    import time

    await asyncio.sleep(seconds)
    return time.monotonic()


@pytest.mark.timeout(60)
def test_async_calls_start_at_once_on_a_worker_busy_with_a_sync_call():
    import asyncio
    import time

    with ProcessExecutor(max_workers=1) as executor:

        @entrypoint(executor=executor)
        async def main(_):
            held = hold_the_worker(1.5)
            await asyncio.sleep(0.2)  # the sync call is running on the only worker
            started = time.monotonic()
            finished = await asyncio.gather(*(nap(0.1) for _ in range(3)))
            return [end - started for end in finished], await held

        naps, held = asyncio.run(main.ainvoke(0))
        assert held == "held"
        assert max(naps) < 1.0, naps  # not behind the 1.5 s sync call


def test_a_worker_keeps_the_function_of_a_call_it_skipped():
    # The parent sends a function's pickle with its first call to a worker only. When
    # that call is cancelled before it starts, the worker must still keep the function:
    # the next call of it comes without.
    import multiprocessing
    import pickle

    from paralleltask import _serde
    from paralleltask._protocol import CANCELLED, DONE, OK
    from paralleltask._run import RunInfo
    from paralleltask._worker import _Worker

    ours, theirs = multiprocessing.Pipe()
    worker = _Worker(theirs)
    info = RunInfo()
    function = double.pickled()
    arguments = _serde.dumps_arguments(double.name, (21,), {}, None)

    def start(call_id, function_blob):
        worker._start_call(
            call_id, 7, function_blob, arguments, False, info.run_id, info.pickled(), (1, 0.0)
        )
        return pickle.loads(ours.recv_bytes())

    worker.queued.update({1, 2})  # received, not started
    worker._cancel(1)  # arrives while call 1 waits behind another
    assert start(1, function)[:3] == (DONE, 1, CANCELLED)
    message = start(2, None)
    assert message[:3] == (DONE, 2, OK)
    assert _serde.loads(message[3]) == 42


def test_a_function_a_worker_cannot_load_fails_each_call_with_the_same_reason():
    import multiprocessing
    import pickle

    from paralleltask import _serde
    from paralleltask._protocol import DONE, NOT_LOADED
    from paralleltask._run import RunInfo
    from paralleltask._worker import _Worker

    ours, theirs = multiprocessing.Pipe()
    worker = _Worker(theirs)
    info = RunInfo()
    arguments = _serde.dumps_arguments(double.name, (1,), {}, None)
    reasons, depths = [], []
    for call_id, function_blob in ((1, b"not a pickle"), (2, None), (3, None), (4, None)):
        worker.queued.add(call_id)
        worker._start_call(
            call_id, 9, function_blob, arguments, False, info.run_id, info.pickled(), (1, 0.0)
        )
        message = pickle.loads(ours.recv_bytes())
        assert message[:3] == (DONE, call_id, NOT_LOADED)
        reasons.append(message[3])
        traceback, depth = worker.functions[9].error.__traceback__, 0
        while traceback is not None:
            traceback, depth = traceback.tb_next, depth + 1
        depths.append(depth)
    assert len(set(reasons)) == 1
    assert "KeyError" not in reasons[1]
    assert depths[1] == depths[3]  # the kept error does not grow a traceback per call


@task
def _slow_increment(x):
    import time

    time.sleep(0.05)
    return x + 1


def test_a_thread_task_futures_done_callback_runs_inside_the_tasks_run():
    """As before the executors shared _execute: the outcome is delivered (and a
    done-callback runs) while the task's own run is current."""
    from paralleltask import ThreadExecutor, get_config

    seen = []

    def callback(_future):
        try:
            seen.append(get_config()["metadata"]["langgraph_node"])
        except RuntimeError as error:
            seen.append(f"RuntimeError: {error}")

    @entrypoint(executor=ThreadExecutor(2))
    def body(x):
        future = _slow_increment(x)
        future.add_done_callback(callback)
        return future.result()

    assert body.invoke(1) == 2
    assert seen == ["_slow_increment"]
