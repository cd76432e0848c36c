"""Errors: worker exceptions re-raised as themselves; paralleltask's own family."""

from __future__ import annotations

import asyncio
import builtins
import os
import sys
import time
import traceback

import pytest

from paralleltask import (
    SerializationError,
    TaskError,
    TaskTimeoutError,
    WorkerCrashedError,
    entrypoint,
    task,
)


class CodedError(Exception):
    """An exception whose __init__ takes other arguments than it passes to super()."""

    def __init__(self, code, reason):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("carries a lock")
        import threading

        self.lock = threading.Lock()


@task
def raise_coded(code):
    raise CodedError(code, "bad input")


@task
def raise_builtin(kind):
    if kind == "key":
        return {}["missing"]
    if kind == "os":
        raise FileNotFoundError(2, "No such file", "/nowhere")
    if kind == "unpicklable":
        raise Unpicklable()
    if kind == "exit":
        raise SystemExit(3)
    raise ValueError(kind)


@task
def die(code):
    os._exit(code)


@entrypoint()
def call_one(args):
    fn, arg = args
    return fn(arg).result()


def test_custom_exception_keeps_type_message_and_attributes():
    with pytest.raises(CodedError) as info:
        call_one.invoke((raise_coded, 7))
    assert str(info.value) == "7: bad input"
    assert (info.value.code, info.value.reason) == (7, "bad input")


def test_worker_traceback_is_in_the_formatted_chain():
    with pytest.raises(CodedError) as info:
        call_one.invoke((raise_coded, 7))
    text = "".join(traceback.format_exception(info.value))
    assert "raise_coded" in text and "raise CodedError(code" in text
    assert "Traceback in the worker" in text or "direct cause" in text  # 3.11+ / 3.10


def test_a_task_sent_by_value_keeps_its_source_lines_in_the_worker_traceback():
    """A task cloudpickle sends by value (defined in a function, in ``__main__``): since
    cloudpickle 3.1.3 its code arrives as "<dynamic-code>"; the worker's traceback must
    still name its file and show its lines."""

    @task
    def local_failure(x: int) -> None:
        values = [x for _ in range(1)]
        raise LookupError(f"nothing at {values}")

    @entrypoint()
    def job(x: int) -> None:
        return local_failure(x).result()

    with pytest.raises(LookupError) as info:
        job.invoke(3)
    text = "".join(traceback.format_exception(info.value))
    assert __file__ in text and 'raise LookupError(f"nothing at {values}")' in text
    assert "<dynamic-code>" not in text


@pytest.mark.parametrize(
    "kind, expected", [("key", KeyError), ("os", FileNotFoundError), ("value", ValueError)]
)
def test_builtin_exceptions_keep_their_type(kind, expected):
    with pytest.raises(expected) as info:
        call_one.invoke((raise_builtin, kind))
    if kind == "os":
        assert (info.value.errno, info.value.filename) == (2, "/nowhere")


def test_system_exit_in_a_task_reaches_the_caller():
    with pytest.raises(SystemExit) as info:
        call_one.invoke((raise_builtin, "exit"))
    assert info.value.code == 3


def test_unpicklable_exception_becomes_serialization_error_with_original_type_name():
    # SerializationError, as for every value that will not cross (README, "errors")
    with pytest.raises(SerializationError) as info:
        call_one.invoke((raise_builtin, "unpicklable"))
    assert isinstance(info.value, TaskError)
    assert "Unpicklable" in str(info.value) and "carries a lock" in str(info.value)
    assert "raise Unpicklable()" in "".join(traceback.format_exception(info.value))


@task
def slow_square(x):
    import time

    time.sleep(0.2)
    return x * x


def test_worker_death_fails_only_that_call_and_the_pool_heals():
    @entrypoint()
    def main(_):
        sibling = slow_square(3)
        doomed = die(7)
        with pytest.raises(WorkerCrashedError):
            doomed.result()
        return sibling.result(), [f.result() for f in [slow_square(i) for i in range(4)]]

    assert main.invoke(0) == (9, [0, 1, 4, 9])


@task
def identity(x):
    return x


@task
def die_at(x, doomed):
    if x == doomed:
        os._exit(11)
    return x


def test_crash_among_prefetched_tiny_calls_fails_only_the_culprit():
    @entrypoint()
    def main(n):
        # Tiny calls of the same task first, so that workers hold batches of its calls.
        warm = [f.result() for f in [die_at(i, -1) for i in range(500)]]
        assert warm == list(range(500))
        futures = [die_at(i, n // 2) for i in range(n)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result())
            except WorkerCrashedError as error:
                outcomes.append(error.exitcode)
        return outcomes

    outcomes = main.invoke(400)
    assert outcomes == [11 if i == 200 else i for i in range(400)]


@task
async def nap_then(x, doomed):
    await asyncio.sleep(0.05 if x == doomed else 0.3)
    if x == doomed:
        os._exit(13)
    return x


@task
def sync_nap(x):
    time.sleep(0.1)
    return x


def test_an_async_crash_fails_only_its_call_not_its_siblings_on_the_worker():
    """Every async call on a dead worker was running when it died: each runs again
    alone, and only the one that crashes alone is failed."""

    @entrypoint()
    async def main(n):
        calls = [nap_then(i, 3) for i in range(n)] + [sync_nap(i) for i in range(2)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return [o.exitcode if isinstance(o, WorkerCrashedError) else o for o in outcomes]

    assert asyncio.run(main.ainvoke(6)) == [0, 1, 2, 13, 4, 5, 0, 1]
    assert asyncio.run(main.ainvoke(4)) == [0, 1, 2, 13, 0, 1]  # the pool healed


def test_worker_crash_error_names_task_and_exit_code():
    @entrypoint()
    def main(_):
        with pytest.raises(WorkerCrashedError) as info:
            die(9).result()
        return info.value

    error = main.invoke(0)
    assert error.task == "die" and error.exitcode == 9
    assert "exit code 9" in str(error) and "'die'" in str(error)


@pytest.mark.parametrize("error_type", [WorkerCrashedError, TaskTimeoutError, SerializationError])
def test_task_errors_are_neither_runtime_nor_os_errors(error_type):
    assert issubclass(error_type, TaskError) and issubclass(TaskError, Exception)
    assert not issubclass(error_type, (RuntimeError, OSError))


def test_timeout_error_has_langgraphs_fields():
    error = TaskTimeoutError("slow", 1.5, kind="run", run_timeout=1.0)
    assert (error.node, error.timeout, error.run_timeout, error.idle_timeout) == (
        "slow",
        1.0,
        1.0,
        None,
    )
    assert (error.elapsed, error.kind) == (1.5, "run")
    assert str(error) == "Node 'slow' exceeded its run timeout of 1.000s (elapsed: 1.500s)."
    with pytest.raises(ValueError):
        TaskTimeoutError("slow", 1.0, kind="idle")


def test_timeout_error_matches_langgraph_node_timeout_error():
    errors = pytest.importorskip("langgraph.errors")
    ours = TaskTimeoutError("n", 2.0, kind="idle", idle_timeout=0.5, run_timeout=3.0)
    theirs = errors.NodeTimeoutError("n", 2.0, kind="idle", idle_timeout=0.5, run_timeout=3.0)
    assert str(ours) == str(theirs)
    for field in ("node", "timeout", "run_timeout", "idle_timeout", "elapsed", "kind"):
        assert getattr(ours, field) == getattr(theirs, field)


# -- what goes wrong in the parent while a result is delivered ---------------------------


class ExitsWhenLoaded:
    """A result whose unpickling, in the parent, raises SystemExit."""

    def __reduce__(self):
        return _exit_now, ()


def _exit_now():
    raise SystemExit("not here")


@task
def returns_trouble(_):
    return ExitsWhenLoaded()


@task
def cached_square(x):
    return x * x


@pytest.mark.timeout(60)
def test_a_result_that_raises_system_exit_when_loaded_fails_only_its_call():
    @entrypoint()
    def main(n):
        trouble = returns_trouble(0)
        squares = [cached_square(i) for i in range(n)]
        return trouble.exception(), [f.result() for f in squares]

    error, squares = main.invoke(4)
    assert isinstance(error, SerializationError)
    assert "could not be unpickled in the parent" in str(error)
    assert squares == [0, 1, 4, 9]
    assert main.invoke(2)[1] == [0, 1]  # the pool's dispatcher lives on


@pytest.mark.timeout(60)
def test_a_cache_that_cannot_store_fails_the_call_instead_of_hanging_it():
    from paralleltask import CachePolicy, MemoryStore

    class FullDisk(MemoryStore):
        def cache_put(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    cached = task(cached_square.func, cache_policy=CachePolicy())

    @entrypoint(cache=FullDisk())
    def main(n):
        return [f.result() for f in [cached(i) for i in range(n)]]

    with pytest.raises(OSError, match="No space left on device"):
        main.invoke(3)


@pytest.mark.timeout(60)
def test_a_done_callback_that_raises_system_exit_stops_no_other_call():
    @entrypoint()
    def main(n):
        first = slow_square(0)  # (0.2 s) still running when its callback is added
        first.add_done_callback(lambda _: _exit_now())
        futures = [first, *(cached_square(i) for i in range(1, n))]
        return [f.result() for f in futures]

    assert main.invoke(6) == [0, 1, 4, 9, 16, 25]
    assert main.invoke(2) == [0, 1]


# -- exceptions that say how to rebuild them, and groups ----------------------------------


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status}: {body}")
        self.status = status


@task
def parse_bad_json(_):
    import json

    return json.loads("{bad")


@task
async def fails_in_a_task_group(_):
    async def call_api():
        raise ApiError(500, "oops")

    async with asyncio.TaskGroup() as group:
        group.create_task(call_api())


def test_an_exception_with_its_own_reduce_keeps_its_message_and_fields():
    import json

    @entrypoint()
    def main(_):
        return parse_bad_json(0).result()

    with pytest.raises(json.JSONDecodeError) as caught:
        main.invoke(0)
    assert str(caught.value).startswith("Expecting property name enclosed in double quotes")
    assert (caught.value.pos, caught.value.lineno, caught.value.colno) == (1, 1, 2)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups: Python 3.11+")
def test_an_exception_group_keeps_members_whose_init_takes_other_arguments():
    @entrypoint()
    async def main(_):
        return await fails_in_a_task_group(0)

    with pytest.raises(builtins.ExceptionGroup) as caught:
        asyncio.run(main.ainvoke(0))
    [member] = caught.value.exceptions
    assert isinstance(member, ApiError)
    assert (str(member), member.status) == ("500: oops", 500)
