"""@task: decoration, calls, serialization of functions and arguments."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading

import pytest

from paralleltask import (
    InlineExecutor,
    ProcessExecutor,
    SerializationError,
    TaskFunction,
    ThreadExecutor,
    entrypoint,
    task,
)

EXECUTORS = [None, ThreadExecutor(), InlineExecutor()]
EXECUTOR_IDS = ["process", "thread", "inline"]


@task
def add(a, b=10):
    return a + b


@task(name="renamed")
def named(x):
    return x


@task
def pid(_=None):
    return os.getpid()


@task
async def async_double(x):
    await asyncio.sleep(0)
    return 2 * x


@task
def append_one(items):
    items.append(1)
    return items


def run_sync(body, executor=None):
    """Invoke ``body(None)`` as a sync entrypoint on ``executor``."""
    return entrypoint(executor=executor)(body).invoke(0)


def test_bare_and_called_decorators_make_tasks():
    assert isinstance(add, TaskFunction)
    assert isinstance(named, TaskFunction)
    assert add.__name__ == "add" and add.name == "add"
    assert named.__name__ == "renamed" and named.name == "renamed"


def test_positional_and_keyword_arguments():
    def body(_):
        return add(1).result(), add(1, 2).result(), add(a=1, b=3).result()

    assert run_sync(body) == (11, 3, 4)


def test_calls_run_in_worker_processes():
    def body(_):
        return {f.result() for f in [pid() for _ in range(8)]}

    pids = run_sync(body)
    assert os.getpid() not in pids
    assert len(pids) <= ProcessExecutor().max_workers


def test_closures_and_lambdas_travel_by_value():
    offset = 5
    closure = task(lambda x: x + offset)

    @task
    def local(x):
        return x * offset

    def body(_):
        return closure(1).result(), local(2).result()

    assert run_sync(body) == (6, 10)


def test_call_outside_entrypoint_raises_runtime_error():
    with pytest.raises(RuntimeError, match="outside of a runnable context"):
        add(1)


def test_generator_function_refused_at_decoration():
    def gen(x):
        yield x

    with pytest.raises(TypeError, match="generator function 'gen'"):
        task(gen)

    async def agen(x):
        yield x

    with pytest.raises(TypeError, match="generator"):
        task(name="g")(agen)


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (0, "run_timeout must be greater than 0"),
        (-1.5, "run_timeout must be greater than 0"),
        ("soon", "could not convert"),
    ],
)
def test_an_invalid_timeout_is_refused_at_declaration(timeout, message):
    with pytest.raises(ValueError, match=message):
        task(timeout=timeout)


def test_unpicklable_argument_named_at_call_site():
    lock = threading.Lock()

    def body(_):
        with pytest.raises(SerializationError) as info:
            add(1, b=lock)
        return info.value

    error = run_sync(body)
    assert error.task == "add" and error.argument == "b"
    assert "keyword argument 'b'" in str(error) and "lock" in str(error)


def test_unpicklable_positional_argument_named_by_position():
    def body(_):
        with pytest.raises(SerializationError) as info:
            add(1, threading.Lock())
        return info.value.argument

    assert run_sync(body) == "1"


def test_pool_untouched_after_serialization_error():
    def body(_):
        with pytest.raises(SerializationError):
            add(threading.Lock())
        return add(1).result()

    assert run_sync(body) == 11


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_arguments_are_copies_on_every_executor(executor):
    def body(_):
        items = []
        returned = append_one(items).result()
        return items, returned

    assert run_sync(body, executor) == ([], [1])


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_unpicklable_argument_refused_on_every_executor(executor):
    def body(_):
        with pytest.raises(SerializationError):
            add(threading.Lock())
        return True

    assert run_sync(body, executor)


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_unpicklable_result_is_a_serialization_error(executor):
    @task
    def make_lock(_):
        return threading.Lock()

    def body(_):
        with pytest.raises(SerializationError, match="result") as info:
            make_lock(0).result()
        return info.value.task

    assert run_sync(body, executor) == "make_lock"


def test_function_pickled_once_per_task(monkeypatch):
    from paralleltask import _serde

    @task
    def counted(x):
        return x

    pickled = []
    real_dumps = _serde.dumps

    def spy(obj):
        if isinstance(obj, TaskFunction):
            pickled.append(obj.name)
        return real_dumps(obj)

    monkeypatch.setattr(_serde, "dumps", spy)

    def body(_):
        return [f.result() for f in [counted(i) for i in range(20)]]

    assert run_sync(body) == list(range(20))
    assert run_sync(body) == list(range(20))
    assert pickled == ["counted"]


def test_sync_future_is_a_concurrent_future_usable_with_wait_and_as_completed():
    def body(_):
        futures = [add(i) for i in range(6)]
        assert all(isinstance(f, cf.Future) for f in futures)
        _, not_done = cf.wait(futures)
        assert not not_done
        return sorted(f.result() for f in cf.as_completed(futures))

    assert run_sync(body) == [10, 11, 12, 13, 14, 15]


def test_async_future_is_an_asyncio_future_on_the_run_loop():
    @entrypoint()
    async def body(_):
        loop = asyncio.get_running_loop()
        futures = [async_double(i) for i in range(5)] + [add(1)]
        assert all(isinstance(f, asyncio.Future) and f.get_loop() is loop for f in futures)
        done, _ = await asyncio.wait(futures[:2])
        assert len(done) == 2
        return await asyncio.gather(*futures)

    assert asyncio.run(body.ainvoke(0)) == [0, 2, 4, 6, 8, 11]


def test_cancelled_future_never_runs(tmp_path):
    marker = tmp_path / "ran"

    @task
    def slow(_):
        import time

        time.sleep(0.3)

    @task
    def touch(path):
        open(path, "w").close()

    def body(_):
        blockers = [slow(i) for i in range(ProcessExecutor().max_workers)]
        victim = touch(str(marker))
        cancelled = victim.cancel()
        for f in blockers:
            f.result()
        return cancelled, victim.cancelled()

    assert run_sync(body) == (True, True)
    assert not marker.exists()


def test_function_that_will_not_pickle_fails_at_the_call_and_spares_the_pool():
    lock = threading.Lock()

    @task
    def uses_a_lock(x):
        with lock:
            return x

    with ProcessExecutor(max_workers=1) as one_worker:

        @entrypoint(executor=one_worker)
        def main(x):
            with pytest.raises(SerializationError, match="its function cannot be pickled"):
                uses_a_lock(x)
            return add(x).result()  # the only worker was not lost

        assert main.invoke(1) == 11
        assert main.invoke(2) == 12
