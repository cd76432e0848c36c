"""@entrypoint: invoke/ainvoke, nesting, threads, LangGraph's end-of-run rules."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from paralleltask import Entrypoint, InlineExecutor, ThreadExecutor, entrypoint, task


@task
def square(x):
    return x * x


@task
def pid_and_value(x):
    return os.getpid(), x


@task
async def nap(i, seconds):
    await asyncio.sleep(seconds)
    return i


@task
def outer(x):
    # A task calling a task: runs inline in the worker, no pool inside a worker.
    return square(x).result() + 1, os.getpid()


@entrypoint()
def sum_of_squares(xs):
    return sum(f.result() for f in [square(x) for x in xs])


@task
def invoke_entrypoint_inside(xs):
    return sum_of_squares.invoke(xs), os.getpid()


@task
def write_after(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("done")
    return seconds


def test_sync_invoke():
    assert isinstance(sum_of_squares, Entrypoint)
    assert sum_of_squares.invoke([1, 2, 3]) == 14


def test_async_ainvoke_with_sync_task():
    @entrypoint()
    async def main(xs):
        return sum(await asyncio.gather(*[square(x) for x in xs]))

    assert asyncio.run(main.ainvoke([1, 2, 3])) == 14


def test_ainvoke_of_a_sync_body():
    assert asyncio.run(sum_of_squares.ainvoke([2, 3])) == 13


def test_sync_invoke_of_async_entrypoint_is_type_error():
    @entrypoint()
    async def main(x):
        return x

    with pytest.raises(TypeError, match='No synchronous function provided to "main"'):
        main.invoke(1)


def test_async_tasks_run_concurrently_inside_workers():
    @entrypoint()
    async def main(n):
        return await asyncio.gather(*[nap(i, 0.5) for i in range(n)])

    asyncio.run(main.ainvoke(1))  # first async call starts each worker's loop
    started = time.perf_counter()
    assert asyncio.run(main.ainvoke(20)) == list(range(20))
    assert time.perf_counter() - started < 1.2  # 20 x 0.5 s serially would be 10 s


def test_threads_invoke_one_entrypoint_at_once_without_mixing():
    @entrypoint()
    def tagged(tag):
        return [f.result() for f in [pid_and_value((tag, i)) for i in range(20)]]

    results = {}

    def worker(tag):
        results[tag] = [value for _, value in tagged.invoke(tag)]

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {t: [(t, i) for i in range(20)] for t in range(6)}


def test_entrypoint_invoked_inside_another_body():
    @entrypoint()
    def parent(xs):
        return sum_of_squares.invoke(xs) + square(10).result()

    assert parent.invoke([1, 2]) == 105


def test_task_called_inside_a_task_runs_in_that_worker():
    @entrypoint()
    def main(x):
        return outer(x).result()

    value, worker = main.invoke(4)
    assert value == 17 and worker != os.getpid()


def test_entrypoint_invoked_inside_a_task_runs_nested_in_the_worker():
    @entrypoint()
    def main(xs):
        return invoke_entrypoint_inside(xs).result()

    value, worker = main.invoke([1, 2, 3])
    assert value == 14 and worker != os.getpid()


def test_invoke_waits_for_fire_and_forget_calls(tmp_path):
    path = tmp_path / "side-effect"

    @entrypoint()
    def main(_):
        write_after(str(path), 0.2)
        return "returned"

    assert main.invoke(0) == "returned"
    assert path.read_text() == "done"


def test_failing_body_lets_its_calls_finish_then_raises(tmp_path):
    path = tmp_path / "side-effect"

    @entrypoint()
    def main(_):
        write_after(str(path), 0.2)
        raise ValueError("body failed")

    with pytest.raises(ValueError, match="body failed"):
        main.invoke(0)
    assert path.read_text() == "done"


def test_final_returns_value():
    @entrypoint()
    def main(x):
        return entrypoint.final(value=x + 1, save=x * 100)

    assert main.invoke(1) == 2


def test_config_is_injected_with_callers_keys():
    @entrypoint()
    def main(x, *, config, previous=None, writer=None):
        writer("ignored under invoke")
        return config["configurable"]["user"], previous

    assert main.invoke(1, {"configurable": {"user": "ada"}}) == ("ada", None)


@pytest.mark.parametrize("parameter", ["store"])
def test_later_entrypoint_parameters_are_refused(parameter):
    with pytest.raises(NotImplementedError, match=parameter):
        entrypoint(**{parameter: object()})


@pytest.mark.parametrize("role", ["checkpointer", "cache"])
def test_a_foreign_store_object_is_refused_naming_the_role(role):
    with pytest.raises(TypeError, match=rf"entrypoint\({role}=\.\.\.\) takes a paralleltask store"):
        entrypoint(**{role: object()})


def test_an_unknown_durability_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="durability must be one of"):
        sum_of_squares.invoke([1], durability="always")


def test_state_methods_answer_as_langgraph_without_checkpointer():
    config = {"configurable": {"thread_id": "1"}}
    with pytest.raises(ValueError, match="No checkpointer set"):
        sum_of_squares.get_state(config)
    with pytest.raises(ValueError, match="No cache is set"):
        sum_of_squares.clear_cache()


def test_bad_executor_is_refused():
    with pytest.raises(TypeError, match="executor must be a paralleltask executor"):
        entrypoint(executor="processes")


@pytest.mark.parametrize(
    "executor", [ThreadExecutor(2), InlineExecutor()], ids=["thread", "inline"]
)
def test_local_executors_run_in_this_process(executor):
    @entrypoint(executor=executor)
    def main(xs):
        return [f.result() for f in [pid_and_value(x) for x in xs]]

    assert main.invoke([1, 2]) == [(os.getpid(), 1), (os.getpid(), 2)]


def test_async_tasks_on_local_executors():
    for executor in (ThreadExecutor(), InlineExecutor()):

        @entrypoint(executor=executor)
        async def main(n):
            return await asyncio.gather(*[nap(i, 0.2) for i in range(n)])

        started = time.perf_counter()
        assert asyncio.run(main.ainvoke(10)) == list(range(10))
        assert time.perf_counter() - started < 1.0


@task
async def nap_then_write(path, seconds):
    await asyncio.sleep(seconds)
    with open(path, "w") as f:
        f.write("not cancelled")


def test_cancelling_a_running_async_task_stops_its_coroutine_in_the_worker(tmp_path):
    path = tmp_path / "written"

    @entrypoint()
    async def main(_):
        running = nap_then_write(str(path), 0.6)
        await asyncio.sleep(0.2)  # it is running in a worker by now
        running.cancel()
        await asyncio.sleep(0.8)  # past the time it would have written
        return running.cancelled()

    assert asyncio.run(main.ainvoke(0)) is True
    assert not path.exists()


def test_cancelling_a_running_async_task_cancels_it():
    @entrypoint()
    async def main(_):
        sleeper = nap("slow", 5)
        await asyncio.sleep(0.2)
        sleeper.cancel()
        return sleeper.cancelled(), await nap("fast", 0)

    started = time.perf_counter()
    assert asyncio.run(main.ainvoke(0)) == (True, "fast")
    assert time.perf_counter() - started < 3


def test_langgraph_run_options_that_ask_for_something_are_refused_by_name():
    @entrypoint(executor=InlineExecutor())
    def main(x):
        return x

    debug = r"main\.stream\(debug=True\).*stream_mode='debug'"
    with pytest.raises(NotImplementedError, match=debug):
        list(main.stream(1, debug=True))
    with pytest.raises(NotImplementedError, match=r"main\.invoke\(interrupt_before=\['main'\]\)"):
        main.invoke(1, interrupt_before=["main"])
    with pytest.raises(TypeError, match=r"main\.ainvoke\(\) got unsupported keyword arguments"):
        asyncio.run(main.ainvoke(1, colour="red"))


def test_unknown_decorator_keywords_are_refused():
    unknown = r"task\(\) got unexpected keyword arguments: \['retries'\]"
    with pytest.raises(TypeError, match=unknown):
        task(retries=3)
    with pytest.raises(TypeError, match=r"entrypoint\(\) got unexpected keyword arguments"):
        entrypoint(checkpoint=None)


def test_batch_max_concurrency_caps_the_runs_at_once():
    running, most = [0], [0]
    lock = threading.Lock()

    @entrypoint(executor=InlineExecutor())
    def main(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return x

    assert main.batch(list(range(6)), {"max_concurrency": 2}) == list(range(6))
    assert most[0] <= 2
    assert asyncio.run(main.abatch([1, 2, 3], {"max_concurrency": 1})) == [1, 2, 3]


def test_the_durability_warning_points_at_the_callers_line():
    """As LangGraph warns: at the line that called invoke()/stream(), not inside us."""
    import warnings as _warnings

    @entrypoint(executor=InlineExecutor())
    def plain(x):
        return x

    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        plain.invoke(1, durability="sync")
        list(plain.stream(1, durability="sync"))
        plain.invoke(1, durability="sync", stream_mode="values")
    assert [w.filename for w in caught] == [__file__] * 3
