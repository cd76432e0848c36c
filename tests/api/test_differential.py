"""Differential tests: the same program on ``langgraph.func`` and on ``paralleltask``.

Each test is parametrized over the implementations: LangGraph 1.2.x (skipped when it is
not installed) and paralleltask on each of its executors (the default process pool,
threads, inline). Expected values are literals that LangGraph's run confirms, so every
implementation is held to the same result, exception type and, where LangGraph's
message is ours to match, message.

Tasks defined at module level are imported by reference in the workers (paralleltask's
module-level tasks below; LangGraph gets a twin made from the same function); tasks
defined in a test are closures or lambdas, cloudpickled by value.

Known, documented difference (tested separately, not as equal): LangGraph hands a task
the caller's argument objects; paralleltask hands it copies, on every executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import paralleltask
from tests.support.impls import (
    IMPLS,
    INLINE,
    PROCESS,
    THREAD,
    Api,
    make_api,
    xfail_on,
)

OUTSIDE_MESSAGE = "Called get_config outside of a runnable context"
ASYNC_IN_SYNC_MESSAGE = "In an sync context async tasks cannot be called"
SLEEP = 0.2  # seconds a "slow" task takes: long enough to still run when the body ends


# -- module-level tasks (workers import them by reference) -----------------------------


@paralleltask.task
def double(x):
    return 2 * x


@paralleltask.task(name="triple_renamed")
def triple(x):
    return 3 * x


@paralleltask.task()
def negate(x):
    return -x


@paralleltask.task
async def adouble(x):
    await asyncio.sleep(0)
    return 2 * x


@paralleltask.task
def combine(a, b, *rest, sep="-", upper=False):
    text = sep.join([a, b, *rest])
    return text.upper() if upper else text


@dataclasses.dataclass
class UserContext:
    user: str
    level: int = 1


@paralleltask.task
def context_in_a_task(_):
    context = paralleltask.get_runtime().context
    return type(context).__name__, context


@paralleltask.task
def store_in_a_task(x, store):
    return ("task", store)


@paralleltask.task
def node_of_a_task(x, config):
    return config["metadata"]["langgraph_node"]


@paralleltask.task
def fails_once(marker):
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("first attempt")
    return "second attempt"


class CodedError(Exception):
    """An exception whose ``__init__`` takes other arguments than its ``args``."""

    def __init__(self, code, *, detail="none"):
        super().__init__(f"failed with code {code}")
        self.code = code
        self.detail = detail


class Abort(BaseException):
    """Not an ``Exception``: a task raising it must still end the call, not hang it."""


@paralleltask.task
def raise_coded(code, detail):
    raise CodedError(code, detail=detail)


@paralleltask.task
def raise_key_error(key):
    return {}[key]


@paralleltask.task
def raise_chained(key):
    try:
        return {}[key]
    except KeyError as exc:
        raise ValueError(f"no entry {key!r}") from exc


@paralleltask.task
def raise_abort(x):
    raise Abort(f"abort {x}")


@paralleltask.task
async def araise_abort(x):
    raise Abort(f"abort {x}")


@paralleltask.task
def write_after(path, delay, text):
    time.sleep(delay)
    Path(path).write_text(text)
    return text


@paralleltask.task
def start_then_write(started, path, delay, text):
    Path(started).touch()
    time.sleep(delay)
    Path(path).write_text(text)
    return text


@paralleltask.task
def start_then_fail(started, delay):
    Path(started).touch()
    time.sleep(delay)
    raise ValueError("failed after its cancel")


def wait_for(path: Path, seconds: float = 5.0) -> None:
    """Until ``path`` exists: a task in another process or thread has started."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


@paralleltask.task
async def awrite_after(path, delay, text):
    await asyncio.sleep(delay)
    Path(path).write_text(text)
    return text


# -- the implementations ---------------------------------------------------------------


@pytest.fixture(params=IMPLS)
def api(request) -> Api:
    return make_api(request.param)


def run_with_deadline(fn, seconds: float = 2.0) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread; ``(finished, outcome)``, outcome being the value
    or the exception it raised. A hung call leaves only a daemon thread behind."""
    outcome: list[Any] = []

    def target():
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive(), outcome[0] if outcome else None)


# -- tasks: names, arguments -----------------------------------------------------------


def test_task_names(api):
    def plain(x):
        return x

    assert api.task(plain).__name__ == "plain"
    assert api.task()(plain).__name__ == "plain"
    assert api.task(name="renamed")(plain).__name__ == "renamed"
    assert api.shared(double).__name__ == "double"
    assert api.shared(triple).__name__ == "triple_renamed"
    assert api.shared(negate).__name__ == "negate"


def test_bare_called_and_named_tasks_run(api):
    twice, thrice, neg = api.shared(double), api.shared(triple), api.shared(negate)
    square = api.task(lambda x: x * x)
    plus = api.task(name="plus_ten")(lambda x: x + 10)

    @api.entrypoint()
    def main(x):
        futures = [twice(x), thrice(x), neg(x), square(x), plus(x)]
        return [f.result() for f in futures]

    assert main.invoke(4) == [8, 12, -4, 16, 14]


def test_positional_and_keyword_arguments(api):
    join = api.shared(combine)

    def closure_join(a, b, *rest, sep="-", upper=False):
        return combine.func(a, b, *rest, sep=sep, upper=upper)

    local_join = api.task(closure_join)

    @api.entrypoint()
    def main(parts):
        calls = []
        for t in (join, local_join):
            calls += [
                t(parts[0], parts[1]),
                t(parts[0], b=parts[1], sep="+"),
                t(*parts, upper=True),
                t(a=parts[0], b=parts[1], upper=True, sep=""),
            ]
        return [f.result() for f in calls]

    once = ["a-b", "a+b", "A-B-C", "AB"]
    assert main.invoke(["a", "b", "c"]) == once + once


def test_tasks_return_values_of_any_shape(api):
    echo = api.task(lambda value: value)
    values = [None, 0, "", (), {"k": [1, (2, 3)]}, {1, 2}, b"bytes", 1.5, 2**70]

    @api.entrypoint()
    def main(values):
        return [echo(v).result() for v in values]

    assert main.invoke(values) == values


# -- entrypoints: sync, async ----------------------------------------------------------


def test_sync_entrypoint(api):
    twice = api.shared(double)

    @api.entrypoint()
    def main(x):
        return twice(x).result() + 1

    assert main.invoke(20) == 41


def test_async_entrypoint_with_async_and_sync_tasks(api):
    atwice, twice = api.shared(adouble), api.shared(double)

    async def aclosure(x):
        await asyncio.sleep(0)
        return x + 1

    ainc = api.task(aclosure)

    @api.entrypoint()
    async def main(x):
        return [await atwice(x), await twice(x), await ainc(x)]

    assert asyncio.run(main.ainvoke(5)) == [10, 10, 6]


def test_ainvoke_of_a_sync_entrypoint(api):
    twice = api.shared(double)

    @api.entrypoint()
    def main(x):
        return twice(x).result()

    assert asyncio.run(main.ainvoke(21)) == 42


def test_entrypoint_final_returns_its_value(api):
    @api.entrypoint()
    def main(x):
        return api.final(value=x + 1, save=x * 100)

    @api.entrypoint()
    async def amain(x):
        return api.final(value=[x], save=None)

    assert main.invoke(1) == 2
    assert asyncio.run(amain.ainvoke(7)) == [7]


def test_injected_config_carries_the_callers_keys(api):
    @api.entrypoint()
    def main(x, config):
        return config

    @api.entrypoint()
    async def amain(x, config):
        return config

    caller = {
        "configurable": {"user_id": "u-1", "thread_id": "t-1"},
        "metadata": {"source": "test"},
        "tags": ["a", "b"],
    }
    for config in (main.invoke(0, caller), asyncio.run(amain.ainvoke(0, caller))):
        assert config["configurable"]["user_id"] == "u-1"
        assert config["configurable"]["thread_id"] == "t-1"
        assert config["metadata"]["source"] == "test"
        assert config["metadata"]["thread_id"] == "t-1"  # copied there, as LangGraph
        assert config["tags"] == ["a", "b"]
    assert isinstance(main.invoke(0)["configurable"], dict)
    moved = main.invoke(0, {"user_id": "u-2", "tags": ["c"]})  # not a config key
    assert moved["configurable"]["user_id"] == "u-2"
    assert "user_id" not in moved
    assert moved["tags"] == ["c"]


# -- refusals: the same exception type and message as LangGraph ------------------------


def test_task_call_outside_an_entrypoint_raises_runtime_error(api):
    twice, atwice = api.shared(double), api.shared(adouble)
    local = api.task(lambda x: x)
    for t in (twice, atwice, local):
        with pytest.raises(RuntimeError) as info:
            t(1)
        assert str(info.value).startswith(OUTSIDE_MESSAGE)

    async def in_a_coroutine_but_no_entrypoint():
        return atwice(1)

    with pytest.raises(RuntimeError, match=OUTSIDE_MESSAGE):
        asyncio.run(in_a_coroutine_but_no_entrypoint())


def test_async_task_from_a_sync_entrypoint_raises_runtime_error(api):
    atwice = api.shared(adouble)

    @api.entrypoint()
    def main(x):
        return atwice(x).result()

    with pytest.raises(RuntimeError) as info:
        main.invoke(1)
    assert str(info.value) == ASYNC_IN_SYNC_MESSAGE


def test_async_task_from_a_sync_entrypoint_under_ainvoke(api, request):
    atwice = api.shared(adouble)

    @api.entrypoint()
    def main(x):
        f = atwice(x)
        return isinstance(f, cf.Future), f.result()

    assert asyncio.run(main.ainvoke(3)) == (True, 6)


def test_sync_invoke_of_an_async_entrypoint_raises_type_error(api):
    @api.entrypoint()
    async def amain(x):
        return x

    with pytest.raises(TypeError) as info:
        amain.invoke(1)
    assert str(info.value) == (
        'No synchronous function provided to "amain".\n'
        "Either initialize with a synchronous function or invoke via the async API "
        "(ainvoke, astream, etc.)"
    )


def test_entrypoint_without_a_parameter_raises_value_error(api):
    def no_input():
        return 1

    with pytest.raises(ValueError) as info:
        api.entrypoint()(no_input)
    assert str(info.value) == "Entrypoint function must have at least one parameter"


def test_generator_entrypoint_raises_not_implemented_error(api):
    def gen(x):
        yield x

    async def agen(x):
        yield x

    for func in (gen, agen):
        with pytest.raises(NotImplementedError) as info:
            api.entrypoint()(func)
        assert str(info.value) == "Generators are not supported in the Functional API."


def test_state_and_cache_methods_without_checkpointer_or_cache(api):
    @api.entrypoint()
    def main(x):
        return x

    config = {"configurable": {"thread_id": "t-1"}}
    with pytest.raises(ValueError, match=r"^No checkpointer set$"):
        main.get_state(config)
    with pytest.raises(ValueError, match=r"^No checkpointer set$"):
        asyncio.run(main.aget_state(config))
    with pytest.raises(ValueError, match=r"^No checkpointer set$"):
        list(main.get_state_history(config))
    with pytest.raises(ValueError, match=r"^No checkpointer set$"):
        main.update_state(config, 1)
    no_cache = r"^No cache is set for this graph\. Cannot clear cache\.$"
    with pytest.raises(ValueError, match=no_cache):
        main.clear_cache()
    with pytest.raises(ValueError, match=no_cache):
        asyncio.run(main.aclear_cache())


# -- exceptions raised in tasks --------------------------------------------------------


def test_builtin_exception_type_and_message(api):
    failing = api.shared(raise_key_error)
    local_failing = api.task(lambda x: int(x))

    @api.entrypoint()
    def main(key):
        return failing(key).result()

    @api.entrypoint()
    def local_main(text):
        return local_failing(text).result()

    with pytest.raises(KeyError) as info:
        main.invoke("missing")
    assert info.value.args == ("missing",)
    with pytest.raises(ValueError) as info:
        local_main.invoke("x1")
    assert str(info.value) == "invalid literal for int() with base 10: 'x1'"


def test_custom_exception_with_a_different_init_signature(api, request):
    failing = api.shared(raise_coded)

    @api.entrypoint()
    def main(code):
        return failing(code, "disk full").result()

    @api.entrypoint()
    async def amain(code):
        return await failing(code, "disk full")

    for run in (lambda: main.invoke(28), lambda: asyncio.run(amain.ainvoke(28))):
        with pytest.raises(CodedError) as info:
            run()
        assert type(info.value) is CodedError
        assert info.value.args == ("failed with code 28",)
        assert str(info.value) == "failed with code 28"
        assert (info.value.code, info.value.detail) == (28, "disk full")


def test_exception_class_defined_in_a_test_is_caught_by_its_class(api):
    class LocalError(Exception):
        def __init__(self, value, reason):
            super().__init__(value)
            self.reason = reason

    def check(value):
        if value < 0:
            raise LocalError(value, "negative")
        return value

    checked = api.task(check)

    @api.entrypoint()
    def main(values):
        try:
            return [checked(v).result() for v in values]
        except LocalError as exc:
            return ("caught", exc.args, exc.reason)

    assert main.invoke([1, 2]) == [1, 2]
    assert main.invoke([1, -2]) == ("caught", (-2,), "negative")


def test_os_error_keeps_errno_and_filename(api, tmp_path):
    reader = api.task(lambda path: Path(path).read_text())
    missing = str(tmp_path / "missing.txt")

    @api.entrypoint()
    def main(path):
        return reader(path).result()

    with pytest.raises(FileNotFoundError) as info:
        main.invoke(missing)
    assert (info.value.errno, info.value.filename) == (2, missing)


def test_task_exception_caught_in_the_body(api):
    failing = api.shared(raise_coded)

    @api.entrypoint()
    def main(code):
        try:
            failing(code, "x").result()
        except CodedError as exc:
            return f"recovered from {exc.code}"

    @api.entrypoint()
    async def amain(code):
        try:
            await failing(code, "x")
        except CodedError as exc:
            return f"recovered from {exc.code}"

    assert main.invoke(3) == "recovered from 3"
    assert asyncio.run(amain.ainvoke(4)) == "recovered from 4"


def test_exception_cause_is_kept(api, request):
    failing = api.shared(raise_chained)

    @api.entrypoint()
    def main(key):
        return failing(key).result()

    with pytest.raises(ValueError, match="no entry 'k'") as info:
        main.invoke("k")
    assert type(info.value.__cause__) is KeyError
    assert info.value.__cause__.args == ("k",)


def test_base_exception_from_a_sync_task_ends_the_call(api):
    """A BaseException that is not an Exception reaches the caller (it once hung the
    thread executor: the deadline keeps a regression from hanging the suite)."""
    failing = api.shared(raise_abort)

    @api.entrypoint()
    def main(x):
        return failing(x).result()

    finished, outcome = run_with_deadline(lambda: main.invoke(1))
    assert finished, "invoke hung"
    assert type(outcome) is Abort
    assert outcome.args == ("abort 1",)


def test_base_exception_from_an_async_task_ends_the_call(api):
    """As above, from an async task (it once hung the thread and inline executors)."""
    failing = api.shared(araise_abort)

    @api.entrypoint()
    async def amain(x):
        return await failing(x)

    async def bounded():
        return await asyncio.wait_for(amain.ainvoke(2), 2.0)

    with pytest.raises(Abort, match="abort 2"):
        asyncio.run(bounded())


# -- futures ---------------------------------------------------------------------------


def test_future_types(api):
    twice, atwice = api.shared(double), api.shared(adouble)

    @api.entrypoint()
    def main(x):
        f = twice(x)
        return isinstance(f, cf.Future), f.result()

    @api.entrypoint()
    async def amain(x):
        fa, fs = atwice(x), twice(x)
        kinds = (isinstance(fa, asyncio.Future), isinstance(fs, asyncio.Future))
        return kinds, await fa, await fs

    assert main.invoke(1) == (True, 2)
    assert asyncio.run(amain.ainvoke(2)) == ((True, True), 4, 4)


def test_wait_and_as_completed_in_a_sync_body(api):
    twice = api.shared(double)
    square = api.task(lambda x: x * x)

    @api.entrypoint()
    def main(xs):
        futures = [twice(x) for x in xs] + [square(x) for x in xs]
        done, not_done = cf.wait(futures)
        completed = [f.result() for f in cf.as_completed([twice(x) for x in xs])]
        first, _ = cf.wait([square(x) for x in xs], return_when=cf.FIRST_COMPLETED)
        return sorted(f.result() for f in done), len(not_done), sorted(completed), len(first)

    done, not_done, completed, first = main.invoke([1, 2, 3])
    assert (done, not_done, completed) == ([1, 2, 4, 4, 6, 9], 0, [2, 4, 6])
    assert first >= 1


def test_gather_wait_and_await_in_an_async_body(api):
    atwice, twice = api.shared(adouble), api.shared(double)

    async def aclosure(x):
        return x + 1

    ainc = api.task(aclosure)

    @api.entrypoint()
    async def amain(xs):
        gathered = await asyncio.gather(*(atwice(x) for x in xs), *(ainc(x) for x in xs))
        done, pending = await asyncio.wait([twice(x) for x in xs])
        first, _ = await asyncio.wait([atwice(x) for x in xs], return_when=asyncio.FIRST_COMPLETED)
        awaited = [await twice(x) for x in xs]
        return gathered, sorted(f.result() for f in done), len(pending), len(first) >= 1, awaited

    assert asyncio.run(amain.ainvoke([1, 2, 3])) == (
        [2, 4, 6, 2, 3, 4],
        [2, 4, 6],
        0,
        True,
        [2, 4, 6],
    )


def test_sync_task_from_an_async_body_runs_concurrently(api):
    twice = api.shared(double)

    @api.entrypoint()
    async def amain(xs):
        return list(await asyncio.gather(*(twice(x) for x in xs)))

    assert asyncio.run(amain.ainvoke(list(range(10)))) == [2 * x for x in range(10)]


# -- the end of a run waits for its tasks ----------------------------------------------


def test_fire_and_forget_task_finishes_before_invoke_returns(api, tmp_path):
    slow = api.shared(write_after)
    target = tmp_path / "side_effect.txt"

    @api.entrypoint()
    def main(path):
        slow(path, SLEEP, "written")
        return "returned"

    assert main.invoke(str(target)) == "returned"
    assert target.read_text() == "written"


def test_fire_and_forget_task_finishes_before_ainvoke_returns(api, tmp_path):
    aslow, slow = api.shared(awrite_after), api.shared(write_after)
    a_target, s_target = tmp_path / "async.txt", tmp_path / "sync.txt"

    @api.entrypoint()
    async def amain(paths):
        aslow(paths[0], SLEEP, "async written")
        slow(paths[1], SLEEP, "sync written")
        return "returned"

    assert asyncio.run(amain.ainvoke([str(a_target), str(s_target)])) == "returned"
    assert a_target.read_text() == "async written"
    assert s_target.read_text() == "sync written"


def test_body_raising_while_a_task_runs(api, tmp_path):
    slow = api.shared(write_after)
    target = tmp_path / "side_effect.txt"

    @api.entrypoint()
    def main(path):
        slow(path, SLEEP, "finished anyway")
        raise LookupError("the body failed")

    with pytest.raises(LookupError) as info:
        main.invoke(str(target))
    assert info.value.args == ("the body failed",)
    assert target.read_text() == "finished anyway"


def test_async_body_raising_lets_its_sync_tasks_finish(api, tmp_path):
    slow = api.shared(write_after)
    target = tmp_path / "side_effect.txt"

    @api.entrypoint()
    async def amain(path):
        slow(path, SLEEP, "finished anyway")
        raise LookupError("the body failed")

    with pytest.raises(LookupError) as info:
        asyncio.run(amain.ainvoke(str(target)))
    assert info.value.args == ("the body failed",)
    assert target.read_text() == "finished anyway"


def test_async_body_raising_cancels_its_async_tasks(api, request, tmp_path):
    aslow = api.shared(awrite_after)
    target = tmp_path / "side_effect.txt"

    @api.entrypoint()
    async def amain(path):
        aslow(path, SLEEP, "should have been cancelled")
        raise LookupError("the body failed")

    with pytest.raises(LookupError) as info:
        asyncio.run(amain.ainvoke(str(target)))
    assert info.value.args == ("the body failed",)
    time.sleep(SLEEP + 0.1)
    assert not target.exists()


RUNS_AT_ITS_CALL = "the inline executor runs a sync task at its call: done before any cancel"


def test_cancelling_a_running_sync_task(api, tmp_path):
    # LangGraph's task future says cancelled, but the task runs to its end: the run waits
    # for it and streams its update after the entrypoint's own.
    if api.impl == INLINE:
        pytest.skip(RUNS_AT_ITS_CALL)
    slow = api.shared(start_then_write)
    seen: dict[str, Any] = {}

    @api.entrypoint()
    def main(name):
        future = slow(str(tmp_path / f"{name}.started"), str(tmp_path / name), SLEEP, "ran")
        wait_for(tmp_path / f"{name}.started")
        seen["cancel"] = future.cancel()
        seen["state"] = (future.cancelled(), future.done())
        try:
            seen["result"] = future.result()
        except cf.CancelledError:
            seen["result"] = "CancelledError"
        seen["cancel again"] = future.cancel()
        return "body done"

    assert main.invoke("invoked") == "body done"
    assert (tmp_path / "invoked").read_text() == "ran"  # the run waited for it
    assert seen == {
        "cancel": True,
        "state": (True, True),
        "result": "CancelledError",
        "cancel again": True,
    }
    assert list(main.stream("streamed")) == [{"main": "body done"}, {"start_then_write": "ran"}]


def test_a_cancelled_running_task_that_fails_does_not_fail_the_run(api, tmp_path):
    if api.impl == INLINE:
        pytest.skip(RUNS_AT_ITS_CALL)
    failing = api.shared(start_then_fail)

    @api.entrypoint()
    def main(_):
        future = failing(str(tmp_path / "started"), SLEEP)
        wait_for(tmp_path / "started")
        future.cancel()
        return "body done"

    chunks = list(main.stream(0, stream_mode=["updates", "tasks"]))
    shapes = [
        (mode, chunk.get("name"), sorted(chunk) if mode == "tasks" else chunk)
        for mode, chunk in chunks
    ]
    assert shapes == [
        ("tasks", "main", ["id", "input", "name", "triggers"]),
        ("tasks", "start_then_fail", ["id", "input", "name", "triggers"]),
        ("updates", None, {"main": "body done"}),
        ("tasks", "main", ["error", "id", "interrupts", "name", "result"]),
        ("tasks", "start_then_fail", ["error", "id", "interrupts", "name", "result"]),
    ]
    error = chunks[-1][1]["error"]
    assert (type(error), error.args) == (ValueError, ("failed after its cancel",))


def test_cancelling_a_finished_task_fails(api):
    twice = api.shared(double)

    @api.entrypoint()
    def main(x):
        future = twice(x)
        value = future.result()
        return value, future.cancel(), future.cancelled()

    assert main.invoke(2) == (4, False, False)


# -- the runtime's execution info -------------------------------------------------------


def test_execution_info_of_the_body_and_of_a_task_and_its_attempts(api, tmp_path):
    get_runtime, attempts = api.get_runtime, tmp_path / "attempts"
    attempts.mkdir()

    def where_am_i(folder):
        done = len(os.listdir(folder))
        Path(folder, str(done)).touch()
        if done == 0:
            raise ValueError("first attempt")
        return dataclasses.asdict(get_runtime().execution_info)

    retried = api.task(
        retry_policy=api.RetryPolicy(initial_interval=0.01, jitter=False, retry_on=ValueError)
    )(where_am_i)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(folder, runtime):
        return dataclasses.asdict(runtime.execution_info), retried(folder).result()

    config = {"configurable": {"thread_id": "t1"}, "run_id": "5f0e3c52-8a4a-4c1e-9a3b-1a2b3c4d5e6f"}
    chunks = list(main.stream(str(attempts), config, stream_mode=["tasks", "updates"]))
    ((body, in_task),) = [c["main"] for mode, c in chunks if mode == "updates" and "main" in c]
    ids = {chunk["name"]: chunk["id"] for mode, chunk in chunks if mode == "tasks"}
    assert body["task_id"] == ids["main"]
    assert in_task["task_id"] == ids["where_am_i"]
    assert body["checkpoint_ns"] == f"main:{body['task_id']}"
    assert in_task["checkpoint_ns"] == f"main:{body['task_id']}|where_am_i:{in_task['task_id']}"
    assert in_task["checkpoint_id"] == body["checkpoint_id"] != ""
    assert (body["thread_id"], body["run_id"], body["node_attempt"]) == (
        "t1",
        "5f0e3c52-8a4a-4c1e-9a3b-1a2b3c4d5e6f",
        1,
    )
    assert (in_task["thread_id"], in_task["run_id"], in_task["node_attempt"]) == ("t1", None, 2)
    for first in (body["node_first_attempt_time"], in_task["node_first_attempt_time"]):
        assert 0 <= time.time() - first < 30


def test_runtime_override_merge_and_patch(api):
    get_runtime = api.get_runtime

    @api.entrypoint()
    def main(_):
        runtime = get_runtime()
        other = runtime.override(context={"user": "b"}, previous=None)
        merged = runtime.override(context={"user": "a"}, previous=3).merge(other)
        patched = runtime.patch_execution_info(node_attempt=7)
        blank = runtime.override(execution_info=None)
        try:
            blank.patch_execution_info(node_attempt=2)
            refused = None
        except RuntimeError as error:
            refused = str(error)
        return (
            merged.context,
            merged.previous,
            patched.execution_info.node_attempt,
            patched.execution_info.task_id == runtime.execution_info.task_id,
            refused,
            runtime.server_info,
            runtime.drain_requested,
            runtime.drain_reason,
        )

    assert main.invoke(0) == (
        {"user": "b"},
        3,
        7,
        True,
        "Cannot patch execution_info before it has been set",
        None,
        False,
        None,
    )


# -- nesting ---------------------------------------------------------------------------


def test_entrypoint_invoked_inside_another_entrypoints_body(api):
    twice = api.shared(double)

    @api.entrypoint()
    def inner(x):
        return twice(x).result() + 1

    @api.entrypoint()
    def outer(x):
        before = twice(x)
        nested = inner.invoke(x)
        return nested + before.result() + twice(x).result()

    @api.entrypoint()
    async def aouter(x):
        return await inner.ainvoke(x) + await twice(x)

    assert outer.invoke(3) == 7 + 6 + 6
    assert asyncio.run(aouter.ainvoke(3)) == 7 + 6


def test_entrypoint_invoked_inside_a_task(api):
    @api.entrypoint()
    def inner(x):
        return x + 100

    calls_inner = api.task(lambda x: inner.invoke(x))

    @api.entrypoint()
    def outer(x):
        return calls_inner(x).result()

    assert outer.invoke(1) == 101


def test_task_calling_a_task_in_a_sync_entrypoint(api, request):
    twice = api.shared(double)
    local_twice = api.task(lambda x: 2 * x)

    def outer(x):
        return twice(x).result() + local_twice(x).result() + 1

    outer_task = api.task(outer)

    @api.entrypoint()
    def main(x):
        return outer_task(x).result()

    assert main.invoke(3) == 13


def test_sync_task_calling_a_task_in_an_async_entrypoint(api, request):
    twice = api.shared(double)
    outer_task = api.task(lambda x: twice(x).result() + 1)

    @api.entrypoint()
    async def amain(x):
        return await outer_task(x)

    assert asyncio.run(amain.ainvoke(3)) == 7


def test_async_task_awaiting_tasks(api):
    atwice, twice = api.shared(adouble), api.shared(double)

    async def outer(x):
        return await atwice(x) + await twice(x) + 1

    outer_task = api.task(outer)

    @api.entrypoint()
    async def amain(x):
        return await outer_task(x)

    assert asyncio.run(amain.ainvoke(3)) == 13


def test_nested_fire_and_forget_task_finishes_before_the_run_ends(api, request, tmp_path):
    aslow = api.shared(awrite_after)
    target = tmp_path / "nested.txt"

    async def outer(path):
        aslow(path, SLEEP, "nested written")
        return "outer done"

    outer_task = api.task(outer)

    @api.entrypoint()
    async def amain(path):
        return await outer_task(path)

    assert asyncio.run(amain.ainvoke(str(target))) == "outer done"
    assert target.exists()
    assert target.read_text() == "nested written"


# -- closures see the caller's current state -------------------------------------------


def test_closure_task_sees_rebound_captured_variable(api, request):
    xfail_on(
        request,
        api,
        {PROCESS},
        "ProcessExecutor pickles a task's function once, at its first call, and each "
        "worker keeps that copy: a closure variable rebound later is not seen",
    )
    factor = 2

    def scale(x):
        return x * factor

    scaled = api.task(scale)

    @api.entrypoint()
    def main(x):
        return scaled(x).result()

    assert main.invoke(5) == 10
    factor = 3
    assert main.invoke(5) == 15


# -- the documented difference: arguments are copies on paralleltask -------------------


def _appended(items, extra):
    items.append("task")
    extra["seen"] = True
    return len(items)


async def _aappended(items, extra):
    return _appended(items, extra)


@pytest.mark.parametrize("impl", [PROCESS, THREAD, INLINE])
def test_paralleltask_passes_copies_of_arguments(impl):
    api = Api(impl)
    mutate, amutate = api.task(_appended), api.task(_aappended)

    @api.entrypoint()
    def main(items):
        extra = {}
        n = mutate(items, extra=extra).result()
        return n, list(items), dict(extra)

    @api.entrypoint()
    async def amain(items):
        extra = {}
        n = await amutate(items, extra=extra)
        return n, list(items), dict(extra)

    items = ["caller"]
    assert main.invoke(items) == (2, ["caller"], {})
    assert asyncio.run(amain.ainvoke(items)) == (2, ["caller"], {})
    assert items == ["caller"]


def test_langgraph_shares_argument_objects(langgraph_func):
    """The other side of the documented difference: LangGraph's task mutates the
    caller's object (if this starts failing, LangGraph changed and so can the docs)."""
    mutate = langgraph_func.task(_appended)

    @langgraph_func.entrypoint()
    def main(items):
        extra = {}
        n = mutate(items, extra=extra).result()
        return n, list(items), dict(extra)

    assert main.invoke(["caller"]) == (2, ["caller", "task"], {"seen": True})


def test_checkpoint_during_is_a_deprecated_name_for_a_durability(api):
    @api.entrypoint()
    def main(x):
        return x + 1

    with pytest.warns(DeprecationWarning, match="`checkpoint_during` is deprecated"):
        assert main.invoke(1, checkpoint_during=False) == 2
    with pytest.warns(DeprecationWarning):
        assert list(main.stream(1, checkpoint_during=True)) == [{"main": 2}]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="Cannot use both"):
        main.invoke(1, checkpoint_during=True, durability="sync")


def test_durability_without_a_checkpointer_warns_that_it_has_no_effect(api):
    @api.entrypoint()
    def main(x):
        return x + 1

    with pytest.warns(UserWarning, match="`durability` has no effect when no checkpointer"):
        assert main.invoke(1, durability="async") == 2  # ("sync" crashes LangGraph 1.2.22)


def test_a_dict_context_becomes_a_dataclass_context_schema(api):
    @api.entrypoint(context_schema=UserContext)
    def main(x, runtime):
        return runtime.context

    assert main.invoke(1, context={"user": "u"}) == UserContext("u")
    assert main.invoke(1, context=UserContext("v", 2)) == UserContext("v", 2)
    with pytest.raises(TypeError):  # a field missing: the schema's own error
        main.invoke(1, context={})


def test_a_task_in_a_worker_sees_the_coerced_context(api):
    if api.is_langgraph:
        pytest.skip("the task reads paralleltask's runtime")

    @api.entrypoint(context_schema=UserContext)
    def main(x):
        return context_in_a_task(x).result()

    assert main.invoke(1, context={"user": "u"}) == ("UserContext", UserContext("u"))


def test_a_dict_context_with_a_non_class_schema_stays_a_dict(api):
    @api.entrypoint(context_schema=dict)
    def main(x, runtime):
        return runtime.context

    assert main.invoke(1, context={"user": "u"}) == {"user": "u"}


def test_nothing_to_resume_without_a_checkpointer(api):
    @api.entrypoint()
    def main(x):
        return x

    for call in (main.invoke, lambda value: list(main.stream(value))):
        with pytest.raises(Exception, match="Received no input for __start__") as caught:
            call(None)
        assert type(caught.value).__name__ == "EmptyInputError"
        message = r"Cannot use Command\(resume=...\) without checkpointer"
        with pytest.raises(RuntimeError, match=message):
            call(api.Command(resume=1))


def test_an_unannotated_store_parameter_is_injected_as_none(api):
    task = api.shared(store_in_a_task)

    @api.entrypoint()
    def main(x, store):
        return store, task(x).result()

    assert main.invoke(1) == (None, ("task", None))


def test_a_tasks_config_names_the_task_as_its_node(api):
    task = api.shared(node_of_a_task)

    @api.entrypoint()
    def main(x, config):
        return config["metadata"]["langgraph_node"], task(x).result()

    assert main.invoke(1) == ("main", "node_of_a_task")


def test_deprecated_decorator_keywords_still_work_with_a_warning(api, tmp_path):
    policy = api.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=False)
    policy = policy._replace(retry_on=ValueError)
    with pytest.warns(DeprecationWarning, match="`retry` is deprecated"):
        retried = api.task(retry=policy)(fails_once.func)
    with pytest.warns(DeprecationWarning, match="`config_schema` is deprecated"):

        @api.entrypoint(config_schema=UserContext)
        def main(marker, runtime):
            return retried(marker).result(), runtime.context

    marker = str(tmp_path / "attempted")
    assert main.invoke(marker, context={"user": "u"}) == ("second attempt", UserContext("u"))


def test_langgraph_run_options_at_their_off_values_are_accepted(api):
    @api.entrypoint()
    def main(x):
        return x + 1

    off = {"debug": False, "interrupt_before": None, "interrupt_after": None, "output_keys": None}
    assert main.invoke(1, print_mode=(), **off) == 2
    assert list(main.stream(1, **off)) == [{"main": 2}]


def test_recursion_limit_below_one_is_refused(api):
    @api.entrypoint()
    def main(x):
        return x

    for limit in (0, -1):
        with pytest.raises(ValueError, match="recursion_limit must be at least 1"):
            main.invoke(1, {"recursion_limit": limit})
    with pytest.raises(TypeError):
        main.invoke(1, {"recursion_limit": "x"})
    assert main.invoke(1, {"recursion_limit": 5}) == 1


def test_batch_invokes_each_input_and_keeps_their_order(api):
    twice = api.shared(double)

    @api.entrypoint()
    def main(x):
        if x < 0:
            raise ValueError(f"negative: {x}")
        return twice(x).result()

    assert main.batch([1, 2, 3, 4, 5]) == [2, 4, 6, 8, 10]
    assert main.batch([]) == []
    out = main.batch([1, -1, 2], return_exceptions=True)
    assert out[0] == 2 and out[2] == 4
    assert isinstance(out[1], ValueError) and str(out[1]) == "negative: -1"
    with pytest.raises(ValueError, match="negative: -1"):
        main.batch([1, -1])
    assert main.batch([1, 2], [{"tags": ["a"]}, {"tags": ["b"]}]) == [2, 4]
    with pytest.raises(ValueError, match="got 1 configs for 2 inputs"):
        main.batch([1, 2], [{"tags": ["a"]}])
    assert asyncio.run(main.abatch([3, 4])) == [6, 8]
    out = asyncio.run(main.abatch([-2, 5], return_exceptions=True))
    assert isinstance(out[0], ValueError) and out[1] == 10


def test_with_config_binds_a_config_that_each_call_merges_over(api):
    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x, config):
        metadata = config["metadata"]
        return {
            "user": config["configurable"].get("user"),
            "tags": config.get("tags"),
            "meta": [metadata.get("a"), metadata.get("b")],
            "limit": config.get("recursion_limit"),
        }

    bound = main.with_config(
        {"configurable": {"thread_id": "w", "user": "u"}, "tags": ["x"], "metadata": {"a": 1}},
        recursion_limit=7,
    )
    assert bound is not main
    first = {"user": "u", "tags": ["x"], "meta": [1, None], "limit": 7}
    assert bound.invoke(1) == first
    call = {"configurable": {"user": "v"}, "tags": ["y"], "metadata": {"b": 2}}
    assert bound.invoke(1, call) == {"user": "v", "tags": ["x", "y"], "meta": [1, 2], "limit": 7}
    assert list(bound.stream(1)) == [{"main": first}]
    assert main.get_state({"configurable": {"thread_id": "w"}}).values == first
