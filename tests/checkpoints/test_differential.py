"""Differential tests of checkpoints and human-in-the-loop: the same program run by
``langgraph.func`` (with an ``InMemorySaver``) and by ``paralleltask`` (process pool,
threads, inline; with a ``MemoryStore``) must answer the same: return values,
``previous``, ``get_state``, ``get_state_history``, ``update_state``, replay of finished
tasks after a failure, and ``interrupt()`` / ``Command(resume=...)``.

Expected values are literals that LangGraph's run confirms. What legitimately differs is
checked for its type and compared for consistency, never by value: checkpoint ids, task
ids, interrupt ids and timestamps.

Executions are counted in files under ``tmp_path`` (a task runs in another process, where
the parent's globals do not count): each execution of a task creates one file named after
it. A task fails while a ``FAIL`` file exists in that folder.

Checkpointed values are kept to dicts, lists, ints and strings: LangGraph's serializer
turns a saved tuple into a list (a body that returned ``(2, None)`` sees
``previous == [2, None]``), which these tests do not ask paralleltask to copy.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import uuid
from typing import Any

import pytest

import paralleltask
from tests.support.impls import IMPLS, Api, make_api

SNAPSHOT_FIELDS = (
    "values",
    "next",
    "config",
    "metadata",
    "created_at",
    "parent_config",
    "tasks",
    "interrupts",
)
TASK_FIELDS = ("id", "name", "path", "error", "interrupts", "state", "result")
PARENTS: dict = {}


@pytest.fixture(params=IMPLS)
def api(request) -> Api:
    return make_api(request.param)


@pytest.fixture
def folder(tmp_path) -> str:
    path = tmp_path / "runs"
    path.mkdir()
    return str(path)


# -- counting executions, failing on demand ----------------------------------------------


def record(folder: str, name: str) -> None:
    """Record one execution of ``name``: tasks run in other processes."""
    open(os.path.join(folder, f"{name}-{uuid.uuid4().hex}"), "w").close()


def count(folder: str, name: str) -> int:
    return sum(1 for entry in os.listdir(folder) if entry.startswith(f"{name}-"))


def counts(folder: str) -> dict:
    names = sorted({entry.split("-")[0] for entry in os.listdir(folder) if "-" in entry})
    return {name: count(folder, name) for name in names}


def fail_from_now(folder: str) -> None:
    open(os.path.join(folder, "FAIL"), "w").close()


def succeed_from_now(folder: str) -> None:
    os.remove(os.path.join(folder, "FAIL"))


def failing(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "FAIL"))


@paralleltask.task
def inc(folder, x):
    record(folder, "inc")
    return x + 1


@paralleltask.task
def flaky(folder, x):
    record(folder, "flaky")
    if failing(folder):
        raise ValueError("boom")
    return x * 100


@paralleltask.task
def exits(folder, code):
    raise SystemExit(code)


@paralleltask.task
def slow_inc(folder, x):
    import time

    time.sleep(0.3)
    record(folder, "slow_inc")
    return x + 1


@paralleltask.task
def read_arg(folder, x):
    record(folder, "read")
    with open(os.path.join(folder, "ARG")) as f:
        return int(f.read()) + x


# -- helpers -----------------------------------------------------------------------------


def thread(name: str = "t") -> dict:
    return {"configurable": {"thread_id": name}}


def check_config(config: Any, thread_id: str) -> str:
    """``config`` is a checkpoint's config on ``thread_id``; its checkpoint id."""
    assert isinstance(config, dict)
    assert list(config) == ["configurable"]
    configurable = config["configurable"]
    assert set(configurable) == {"thread_id", "checkpoint_ns", "checkpoint_id"}
    assert configurable["thread_id"] == thread_id
    assert configurable["checkpoint_ns"] == ""
    checkpoint_id = configurable["checkpoint_id"]
    assert isinstance(checkpoint_id, str) and checkpoint_id
    return checkpoint_id


def check_created_at(stamp: Any) -> None:
    assert isinstance(stamp, str)
    assert datetime.datetime.fromisoformat(stamp).tzinfo is not None


def metadata(source: str, step: int) -> dict:
    return {"source": source, "step": step, "parents": PARENTS}


def task_view(task: Any) -> tuple:
    """A ``PregelTask`` without its id (checked: a non-empty str); interrupts by value."""
    assert tuple(task._fields) == TASK_FIELDS
    assert isinstance(task.id, str) and task.id
    assert isinstance(task.interrupts, tuple)
    return (
        task.name,
        task.path,
        task.error,
        tuple(i.value for i in task.interrupts),
        task.state,
        task.result,
    )


def history_view(api_main: Any, config: dict, **kwargs: Any) -> list:
    """``(source, step, next, values, tasks)`` of each checkpoint, newest first; the
    parent links are checked on the way."""
    snapshots = list(api_main.get_state_history(config, **kwargs))
    for newer, older in itertools.pairwise(snapshots):
        assert newer.parent_config == older.config
    out = []
    for s in snapshots:
        check_config(s.config, config["configurable"]["thread_id"])
        check_created_at(s.created_at)
        out.append(
            (
                s.metadata["source"],
                s.metadata["step"],
                s.next,
                s.values,
                [task_view(t) for t in s.tasks],
            )
        )
    return out


def history_view_unlinked(api_main: Any, config: dict) -> list:
    """:func:`history_view` of a thread with forks: newer is not always older's child."""
    return [
        (s.metadata["source"], s.metadata["step"], s.next, s.values, s.tasks)
        for s in api_main.get_state_history(config)
    ]


def interrupt_values(interrupts: Any) -> list:
    return [i.value for i in interrupts]


def check_interrupt_ids(api: Any, returned: list, state: Any) -> str:
    """The interrupts of invoke's return, of the state and of its task are the same
    ones: same values, same non-empty str ids. The (single) id."""
    assert isinstance(returned, list)
    for i in (*returned, *state.interrupts):
        assert isinstance(i, api.Interrupt)
        assert isinstance(i.id, str) and i.id
    assert [i.id for i in returned] == [i.id for i in state.interrupts]
    assert [i.id for i in state.tasks[0].interrupts] == [i.id for i in state.interrupts]
    assert interrupt_values(returned) == interrupt_values(state.interrupts)
    return returned[0].id


def normalized(chunks: list) -> list:
    """Stream chunks with each Interrupt replaced by its value (ids differ)."""
    out = []
    for chunk in chunks:
        mode, data = chunk if isinstance(chunk, tuple) else (None, chunk)
        if isinstance(data, dict) and "__interrupt__" in data:
            interrupts = data["__interrupt__"]
            assert isinstance(interrupts, tuple)
            data = {**data, "__interrupt__": tuple(i.value for i in interrupts)}
        out.append(data if mode is None else (mode, data))
    return out


def cache_and_policy(api: Api) -> tuple:
    """A fresh in-memory cache and the CachePolicy class of ``api``."""
    if api.is_langgraph:
        from langgraph.cache.memory import InMemoryCache
        from langgraph.types import CachePolicy

        return InMemoryCache(), CachePolicy
    return paralleltask.MemoryStore(), paralleltask.CachePolicy


def ask_task(api: Api, folder: str) -> Any:
    """A task that asks a question with ``interrupt()`` (runs in a worker for
    paralleltask's process pool): pickled by value, with the right ``interrupt``."""
    interrupt = api.interrupt

    def ask(x):
        record(folder, "ask")
        answer = interrupt(f"ask {x}")
        record(folder, "answered")
        return f"{x}:{answer}"

    return api.task(ask)


def four_step_program(api: Api, folder: str) -> Any:
    """inc, inc, flaky, inc: ``[2, 3, 300, 301]`` for 1."""
    inc_, flaky_ = api.shared(inc), api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        b = inc_(folder, a).result()
        c = flaky_(folder, b).result()
        d = inc_(folder, c).result()
        return [a, b, c, d]

    return main


def two_step_program(api: Api, folder: str) -> Any:
    """inc then flaky, with ``previous``: ``{"r": (x + 1) * 100, "prev": previous}``."""
    inc_, flaky_ = api.shared(inc), api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x, *, previous=None):
        a = inc_(folder, x).result()
        return {"r": flaky_(folder, a).result(), "prev": previous}

    return main


# -- 1. a thread id is required ----------------------------------------------------------


@pytest.mark.parametrize(
    "config", [None, {}, {"configurable": {}}], ids=["none", "empty", "no-keys"]
)
@pytest.mark.parametrize("call", ["invoke", "stream", "ainvoke"])
def test_a_checkpointer_without_thread_id_raises_value_error(api, folder, config, call):
    main = two_step_program(api, folder)
    with pytest.raises(ValueError) as info:
        if call == "invoke":
            main.invoke(1, config)
        elif call == "stream":
            list(main.stream(1, config))
        else:
            asyncio.run(main.ainvoke(1, config))
    assert "thread_id" in str(info.value)
    assert str(info.value) == (
        "Checkpointer requires one or more of the following 'configurable' keys: "
        "thread_id, checkpoint_ns, checkpoint_id"
    )
    assert counts(folder) == {}


def test_other_configurable_keys_without_thread_id_raise_key_error(api, folder):
    main = two_step_program(api, folder)
    # Surprising: with other 'configurable' keys, LangGraph raises KeyError, not ValueError.
    with pytest.raises(KeyError) as info:
        main.invoke(1, {"configurable": {"user": 1}})
    assert info.value.args == ("thread_id",)


@pytest.mark.parametrize("method", ["get_state", "get_state_history", "update_state"])
def test_state_methods_without_thread_id_raise_key_error(api, folder, method):
    main = two_step_program(api, folder)
    with pytest.raises(KeyError) as info:
        if method == "get_state":
            main.get_state({"configurable": {}})
        elif method == "get_state_history":
            list(main.get_state_history({"configurable": {}}))
        else:
            main.update_state({"configurable": {}}, 1)
    assert info.value.args == ("thread_id",)


# -- 2. previous and entrypoint.final ----------------------------------------------------


def test_previous_is_the_threads_last_return_value(api, folder):
    main = two_step_program(api, folder)
    assert main.invoke(1, thread()) == {"r": 200, "prev": None}
    assert main.invoke(2, thread()) == {"r": 300, "prev": {"r": 200, "prev": None}}
    assert main.invoke(3, thread()) == {
        "r": 400,
        "prev": {"r": 300, "prev": {"r": 200, "prev": None}},
    }
    assert counts(folder) == {"flaky": 3, "inc": 3}


def test_threads_are_independent(api, folder):
    main = two_step_program(api, folder)
    assert main.invoke(1, thread("a")) == {"r": 200, "prev": None}
    assert main.invoke(5, thread("b")) == {"r": 600, "prev": None}
    assert main.invoke(2, thread("a")) == {"r": 300, "prev": {"r": 200, "prev": None}}
    assert main.get_state(thread("b")).values == {"r": 600, "prev": None}
    assert main.get_state(thread("a")).values == {"r": 300, "prev": {"r": 200, "prev": None}}


def test_final_gives_the_caller_value_and_the_next_run_save(api, folder):
    inc_ = api.shared(inc)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x, *, previous=None):
        return api.final(value={"v": inc_(folder, x).result(), "prev": previous}, save=x * 10)

    assert main.invoke(1, thread()) == {"v": 2, "prev": None}
    # Surprising: get_state shows final's value, though the next run's previous is save.
    assert main.get_state(thread()).values == {"v": 2, "prev": None}
    assert main.invoke(2, thread()) == {"v": 3, "prev": 10}
    assert main.get_state(thread()).values == {"v": 3, "prev": 10}
    assert main.invoke(None, thread()) == {"v": 3, "prev": 10}
    assert count(folder, "inc") == 2
    with pytest.raises(TypeError):  # keyword-only, as LangGraph's
        api.final(1, 2)


def test_an_int_thread_id_is_a_str_in_state_configs(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, {"configurable": {"thread_id": 5}})
    assert main.invoke(2, {"configurable": {"thread_id": 5}})["prev"] == {"r": 200, "prev": None}
    state = main.get_state({"configurable": {"thread_id": 5}})
    check_config(state.config, "5")


# -- 3, 4. get_state ---------------------------------------------------------------------


def test_get_state_of_a_finished_thread(api, folder):
    main = two_step_program(api, folder)
    steps = []
    ids = []
    for x in (1, 2, 3):
        main.invoke(x, thread())
        state = main.get_state(thread())
        assert tuple(state._fields) == SNAPSHOT_FIELDS
        steps.append(state.metadata)
        ids.append(check_config(state.config, "t"))
        assert state.next == ()
        assert state.tasks == ()
        assert state.interrupts == ()
        check_created_at(state.created_at)
        parent_id = check_config(state.parent_config, "t")
        assert parent_id not in ids
    # Each run saves an 'input' then a 'loop' checkpoint: the first run's steps are -1, 0.
    assert steps == [metadata("loop", 0), metadata("loop", 2), metadata("loop", 4)]
    assert len(set(ids)) == 3
    assert state.values == {"r": 400, "prev": {"r": 300, "prev": {"r": 200, "prev": None}}}
    history = list(main.get_state_history(thread()))
    assert state.parent_config == history[1].config
    assert history[0].config == state.config


def test_get_state_of_an_unknown_thread(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, thread("other"))
    config = {"configurable": {"thread_id": "unknown"}}
    state = main.get_state(config)
    assert tuple(state._fields) == SNAPSHOT_FIELDS
    assert state.values == {}
    assert state.next == ()
    assert state.config == config
    assert state.metadata is None
    assert state.created_at is None
    assert state.parent_config is None
    assert state.tasks == ()
    assert state.interrupts == ()
    assert list(main.get_state_history(config)) == []


# -- 5, 6, 7, 8. failure, resume, replay -------------------------------------------------


def test_a_failed_run_leaves_the_entrypoint_pending_with_its_error(api, folder):
    main = four_step_program(api, folder)
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread())
    state = main.get_state(thread())
    # Surprising: a failed first run's values are None, an unknown thread's are {}.
    assert state.values is None
    assert state.next == ("main",)
    assert state.metadata == metadata("input", -1)
    check_config(state.config, "t")
    assert state.parent_config is None
    assert state.interrupts == ()
    # The error is stored as the repr of the exception, a str.
    assert [task_view(t) for t in state.tasks] == [
        ("main", ("__pregel_pull", "main"), "ValueError('boom')", (), None, None)
    ]
    assert type(state.tasks[0].error) is str
    assert counts(folder) == {"flaky": 1, "inc": 2}


def test_a_task_raising_system_exit_fails_the_run_like_any_error(api, folder):
    exits_, slow_inc_ = api.shared(exits), api.shared(slow_inc)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        later = slow_inc_(folder, x)
        return exits_(folder, 4).result(), later.result()

    with pytest.raises(SystemExit) as caught:
        main.invoke(1, thread())
    assert caught.value.code == 4
    assert count(folder, "slow_inc") == 1  # its sibling finished, as after any error
    assert [t.error for t in main.get_state(thread()).tasks] == ["SystemExit(4)"]


def test_resume_after_a_failure_reruns_only_the_failed_task(api, folder):
    main = four_step_program(api, folder)
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread())
    succeed_from_now(folder)
    assert main.invoke(None, thread()) == [2, 3, 300, 301]
    assert counts(folder) == {"flaky": 2, "inc": 3}
    state = main.get_state(thread())
    assert state.values == [2, 3, 300, 301]
    assert state.next == ()
    assert state.tasks == ()
    # Resuming saves no new 'input' checkpoint: the finished run's 'loop' one is step 0.
    assert state.metadata == metadata("loop", 0)


def test_async_resume_after_a_failure_reruns_only_the_failed_task(api, folder):
    inc_, flaky_ = api.shared(inc), api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer())
    async def main(x):
        a = await inc_(folder, x)
        b = await inc_(folder, a)
        c = await flaky_(folder, b)
        d = await inc_(folder, c)
        return [a, b, c, d]

    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(main.ainvoke(1, thread()))
    state = main.get_state(thread())
    assert state.next == ("main",)
    assert [task_view(t) for t in state.tasks] == [
        ("main", ("__pregel_pull", "main"), "ValueError('boom')", (), None, None)
    ]
    succeed_from_now(folder)
    assert asyncio.run(main.ainvoke(None, thread())) == [2, 3, 300, 301]
    assert counts(folder) == {"flaky": 2, "inc": 3}
    assert main.get_state(thread()).metadata == metadata("loop", 0)


def test_the_same_input_after_a_failure_starts_a_fresh_run(api, folder):
    main = two_step_program(api, folder)
    assert main.invoke(1, thread()) == {"r": 200, "prev": None}
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(3, thread())
    assert counts(folder) == {"flaky": 2, "inc": 2}
    succeed_from_now(folder)
    # previous is the last successful run's value.
    assert main.invoke(3, thread()) == {"r": 400, "prev": {"r": 200, "prev": None}}
    assert counts(folder) == {"flaky": 3, "inc": 3}
    assert history_view(main, thread()) == [
        ("loop", 3, (), {"r": 400, "prev": {"r": 200, "prev": None}}, []),
        (
            "input",
            2,
            ("main",),
            {"r": 200, "prev": None},
            [
                (
                    "main",
                    ("__pregel_pull", "main"),
                    None,
                    (),
                    None,
                    {"r": 400, "prev": {"r": 200, "prev": None}},
                )
            ],
        ),
        (
            "input",
            1,
            ("main",),
            {"r": 200, "prev": None},
            [("main", ("__pregel_pull", "main"), "ValueError('boom')", (), None, None)],
        ),
        ("loop", 0, (), {"r": 200, "prev": None}, []),
        (
            "input",
            -1,
            ("main",),
            None,
            [("main", ("__pregel_pull", "main"), None, (), None, {"r": 200, "prev": None})],
        ),
    ]


def test_invoke_none_after_a_success_returns_the_last_value_and_runs_nothing(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, thread())
    main.invoke(2, thread())
    before = history_view(main, thread())
    assert main.invoke(None, thread()) == {"r": 300, "prev": {"r": 200, "prev": None}}
    assert list(main.stream(None, thread())) == []
    assert list(main.stream(None, thread(), stream_mode=["updates", "values"])) == [
        ("values", {"r": 300, "prev": {"r": 200, "prev": None}})
    ]
    assert counts(folder) == {"flaky": 2, "inc": 2}
    assert history_view(main, thread()) == before  # no checkpoint saved


def test_replay_is_by_call_order_not_by_arguments(api, folder):
    inc_, flaky_, read_ = api.shared(inc), api.shared(flaky), api.shared(read_arg)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        b = inc_(folder, x).result()  # the same call again: a call of its own
        c = read_(folder, x).result()
        d = flaky_(folder, a).result()
        return [a, b, c, d, inc_(folder, x).result()]

    with open(os.path.join(folder, "ARG"), "w") as f:
        f.write("10")
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread())
    assert counts(folder) == {"flaky": 1, "inc": 2, "read": 1}
    with open(os.path.join(folder, "ARG"), "w") as f:
        f.write("50")
    succeed_from_now(folder)
    # Finished calls are replayed by their place in the body: read_arg is not re-run and
    # keeps 11, though it would read 51 now.
    assert main.invoke(None, thread()) == [2, 2, 11, 200, 2]
    assert counts(folder) == {"flaky": 2, "inc": 3, "read": 1}


def test_replay_with_different_arguments_returns_the_recorded_result(api, folder):
    inc_, flaky_ = api.shared(inc), api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        with open(os.path.join(folder, "ARG")) as f:
            arg = int(f.read())
        a = inc_(folder, arg).result()
        return [a, flaky_(folder, a).result()]

    with open(os.path.join(folder, "ARG"), "w") as f:
        f.write("1")
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(0, thread())
    with open(os.path.join(folder, "ARG"), "w") as f:
        f.write("7")
    succeed_from_now(folder)
    # Surprising: inc(folder, 7) answers inc(folder, 1)'s recorded 2: replay matches calls
    # by order, not by arguments.
    assert main.invoke(None, thread()) == [2, 200]
    assert counts(folder) == {"flaky": 2, "inc": 1}


def test_streaming_a_resume_yields_only_the_rerun_tasks_updates(api, folder):
    main = four_step_program(api, folder)
    assert main.invoke(0, thread()) == [1, 2, 200, 201]
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread())
    succeed_from_now(folder)
    chunks = list(main.stream(None, thread(), stream_mode=["updates", "values"]))
    # The first chunk is the thread's values at the failed run's 'input' checkpoint: the
    # previous run's value; replayed tasks (inc, inc) yield no update.
    assert chunks == [
        ("values", [1, 2, 200, 201]),
        ("updates", {"flaky": 300}),
        ("updates", {"inc": 301}),
        ("updates", {"main": [2, 3, 300, 301]}),
        ("values", [2, 3, 300, 301]),
    ]
    assert counts(folder) == {"flaky": 3, "inc": 6}


def test_streaming_a_resume_of_a_first_run_starts_with_none(api, folder):
    main = four_step_program(api, folder)
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        list(main.stream(1, thread()))
    succeed_from_now(folder)
    assert list(main.stream(None, thread(), stream_mode=["updates", "values"])) == [
        ("values", None),
        ("updates", {"flaky": 300}),
        ("updates", {"inc": 301}),
        ("updates", {"main": [2, 3, 300, 301]}),
        ("values", [2, 3, 300, 301]),
    ]


# -- 9, 10. history and update_state -----------------------------------------------------


def history_program(api: Api, folder: str) -> Any:
    """Two runs, a failed run, its resume, an update: the history of thread 't'."""
    main = two_step_program(api, folder)
    main.invoke(1, thread())
    main.invoke(2, thread())
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(3, thread())
    succeed_from_now(folder)
    main.invoke(None, thread())
    main.update_state(thread(), {"x": 1})
    return main


def test_state_history_over_runs_a_failure_its_resume_and_an_update(api, folder):
    main = history_program(api, folder)
    one = {"r": 200, "prev": None}
    two = {"r": 300, "prev": one}
    three = {"r": 400, "prev": two}
    pull = ("__pregel_pull", "main")
    assert history_view(main, thread()) == [
        ("update", 5, (), {"x": 1}, []),
        ("loop", 4, (), three, []),
        # Surprising: after the resume, the failed checkpoint's task has both its error and
        # the resumed run's result.
        ("input", 3, ("main",), two, [("main", pull, "ValueError('boom')", (), None, three)]),
        ("loop", 2, (), two, []),
        ("input", 1, ("main",), one, [("main", pull, None, (), None, two)]),
        ("loop", 0, (), one, []),
        ("input", -1, ("main",), None, [("main", pull, None, (), None, one)]),
    ]
    snapshots = list(main.get_state_history(thread()))
    assert snapshots[-1].parent_config is None
    assert all(s.metadata["parents"] == {} for s in snapshots)
    assert all(s.interrupts == () for s in snapshots)


def test_state_history_limit(api, folder):
    main = history_program(api, folder)
    assert [s.metadata["step"] for s in main.get_state_history(thread(), limit=3)] == [5, 4, 3]
    assert [s.metadata["step"] for s in main.get_state_history(thread(), limit=1)] == [5]
    assert len(list(main.get_state_history(thread(), limit=100))) == 7


def test_checkpoint_metadata_takes_the_configs_scalar_metadata_and_configurable(api, folder):
    main = two_step_program(api, folder)
    configurable = {"thread_id": "t", "user": "u1", "shard": 3, "tags": [1], "__hidden": 1}
    config = {"configurable": configurable, "metadata": {"m": 1.5, "user": "from-metadata"}}
    main.invoke(1, config)
    extra = {"m": 1.5, "user": "from-metadata", "shard": 3}  # metadata's wins; no list
    assert main.get_state(thread()).metadata == {**metadata("loop", 0), **extra}
    assert [s.metadata for s in main.get_state_history(thread(), filter={"shard": 3})] == [
        {**metadata("loop", 0), **extra},
        {**metadata("input", -1), **extra},
    ]
    main.update_state({"configurable": {"thread_id": "t", "who": "admin"}}, {"x": 1})
    assert main.get_state(thread()).metadata == {**metadata("update", 1), "who": "admin"}
    assert list(main.get_state_history(thread(), filter={"user": "nobody"})) == []


def test_a_thread_id_at_the_top_level_of_the_config_names_the_thread(api, folder):
    main = two_step_program(api, folder)
    assert main.invoke(1, {"thread_id": "top"}) == {"r": 200, "prev": None}
    assert main.invoke(2, {"thread_id": "top"}) == {"r": 300, "prev": {"r": 200, "prev": None}}
    assert main.get_state(thread("top")).values == {"r": 300, "prev": {"r": 200, "prev": None}}


def test_state_history_of_a_config_naming_a_checkpoint_or_another_namespace(api, folder):
    main = history_program(api, folder)
    third = list(main.get_state_history(thread()))[2]
    assert list(main.get_state_history(third.config)) == [third]
    elsewhere = {"configurable": {"thread_id": "t", "checkpoint_ns": "sub"}}
    assert list(main.get_state_history(elsewhere)) == []
    state = main.get_state(elsewhere)
    assert (state.values, state.next, state.metadata, state.config) == ({}, (), None, elsewhere)


def test_update_state_sets_values_and_the_next_runs_previous(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, thread())
    before = main.get_state(thread())
    config = main.update_state(thread(), {"x": 1})
    new_id = check_config(config, "t")
    assert new_id != before.config["configurable"]["checkpoint_id"]
    state = main.get_state(thread())
    assert state.config == config
    assert state.values == {"x": 1}
    assert state.metadata == metadata("update", 1)
    assert state.next == ()
    assert state.tasks == ()
    assert state.parent_config == before.config
    assert main.invoke(7, thread()) == {"r": 800, "prev": {"x": 1}}
    assert main.get_state(thread()).metadata == metadata("loop", 3)


def test_update_state_on_a_new_thread(api, folder):
    main = two_step_program(api, folder)
    config = main.update_state(thread("new"), 42)
    check_config(config, "new")
    state = main.get_state(thread("new"))
    assert state.values == 42
    assert state.metadata == metadata("update", 0)
    assert state.parent_config is None
    assert state.config == config
    assert main.invoke(1, thread("new")) == {"r": 200, "prev": 42}
    assert [(s, n, nxt, v) for s, n, nxt, v, _ in history_view(main, thread("new"))] == [
        ("loop", 2, (), {"r": 200, "prev": 42}),
        ("input", 1, ("main",), 42),
        ("update", 0, (), 42),
    ]
    assert counts(folder) == {"flaky": 1, "inc": 1}


def test_update_state_from_an_older_checkpoint_forks_the_thread(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, thread())
    main.invoke(2, thread())
    older = list(main.get_state_history(thread()))[2]  # the first run's loop checkpoint
    assert older.metadata == metadata("loop", 0)
    config = main.update_state(older.config, {"x": "forked"})
    state = main.get_state(thread())
    assert state.config == config
    assert state.values == {"x": "forked"}
    assert state.metadata == metadata("update", 1)  # the fork's step follows its parent's
    assert state.parent_config == older.config
    assert main.invoke(3, thread()) == {"r": 400, "prev": {"x": "forked"}}
    # The history keeps both branches, newest first.
    assert [(s, n, v) for s, n, _, v, _ in history_view_unlinked(main, thread())] == [
        ("loop", 3, {"r": 400, "prev": {"x": "forked"}}),
        ("input", 2, {"x": "forked"}),
        ("update", 1, {"x": "forked"}),
        ("loop", 2, {"r": 300, "prev": {"r": 200, "prev": None}}),
        ("input", 1, {"r": 200, "prev": None}),
        ("loop", 0, {"r": 200, "prev": None}),
        ("input", -1, None),
    ]
    # The latest checkpoint's own config appends, as a plain thread config does.
    main.update_state(main.get_state(thread()).config, {"x": "head"})
    assert main.get_state(thread()).metadata == metadata("update", 4)


def test_update_state_as_node_must_name_the_entrypoint(api, folder):
    main = two_step_program(api, folder)
    main.invoke(1, thread())
    for node in ("nope", "__start__", "__end__"):
        with pytest.raises(Exception, match=f"Node {node} does not exist") as info:
            main.update_state(thread(), {"x": 1}, as_node=node)
        assert type(info.value).__name__ == "InvalidUpdateError"
    main.update_state(thread(), {"x": 2}, as_node="main", task_id="any")
    assert main.get_state(thread()).values == {"x": 2}


def test_async_state_methods(api, folder):
    main = two_step_program(api, folder)

    async def scenario():
        assert await main.ainvoke(1, thread()) == {"r": 200, "prev": None}
        state = await main.aget_state(thread())
        assert state.values == {"r": 200, "prev": None}
        assert state.metadata == metadata("loop", 0)
        history = [s.metadata async for s in main.aget_state_history(thread())]
        assert history == [metadata("loop", 0), metadata("input", -1)]
        config = await main.aupdate_state(thread(), {"v": 9})
        check_config(config, "t")
        state = await main.aget_state(thread())
        assert (state.values, state.metadata) == ({"v": 9}, metadata("update", 1))

    asyncio.run(scenario())


# -- 11-16. interrupts -------------------------------------------------------------------


def interrupting_program(api: Api, folder: str) -> Any:
    inc_ = api.shared(inc)
    interrupt = api.interrupt

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        answer = interrupt({"q": a})
        return {"a": a, "answer": answer}

    return main


def test_interrupt_in_the_body_returns_it_and_resume_answers_it(api, folder):
    main = interrupting_program(api, folder)
    returned = main.invoke(1, thread())
    assert list(returned) == ["__interrupt__"]
    # invoke returns a list of Interrupts; stream yields a tuple.
    assert interrupt_values(returned["__interrupt__"]) == [{"q": 2}]
    state = main.get_state(thread())
    check_interrupt_ids(api, returned["__interrupt__"], state)
    assert main.invoke(api.Command(resume="x"), thread()) == {"a": 2, "answer": "x"}
    assert counts(folder) == {"inc": 1}


def test_state_of_an_interrupted_thread(api, folder):
    main = interrupting_program(api, folder)
    main.invoke(1, thread())
    state = main.get_state(thread())
    assert state.values is None
    assert state.next == ("main",)
    assert state.metadata == metadata("input", -1)
    check_config(state.config, "t")
    assert state.parent_config is None
    assert interrupt_values(state.interrupts) == [{"q": 2}]
    assert [task_view(t) for t in state.tasks] == [
        ("main", ("__pregel_pull", "main"), None, ({"q": 2},), None, None)
    ]
    main.invoke(api.Command(resume="x"), thread())
    # The resumed run saves only its 'loop' checkpoint; the interrupted one keeps the
    # interrupt and gains the result.
    assert history_view(main, thread()) == [
        ("loop", 0, (), {"a": 2, "answer": "x"}, []),
        (
            "input",
            -1,
            ("main",),
            None,
            [("main", ("__pregel_pull", "main"), None, ({"q": 2},), None, {"a": 2, "answer": "x"})],
        ),
    ]
    assert interrupt_values(list(main.get_state_history(thread()))[1].interrupts) == [{"q": 2}]
    assert main.get_state(thread()).interrupts == ()


def test_invoke_none_on_an_interrupted_thread_interrupts_again(api, folder):
    main = interrupting_program(api, folder)
    first = main.invoke(1, thread())["__interrupt__"]
    again = main.invoke(None, thread())["__interrupt__"]
    assert interrupt_values(again) == [{"q": 2}]
    assert [i.id for i in again] == [i.id for i in first]
    assert counts(folder) == {"inc": 1}
    assert [s.metadata for s in main.get_state_history(thread())] == [metadata("input", -1)]


def test_a_new_input_on_an_interrupted_thread_starts_a_fresh_run(api, folder):
    main = interrupting_program(api, folder)
    main.invoke(1, thread())
    returned = main.invoke(5, thread())
    assert interrupt_values(returned["__interrupt__"]) == [{"q": 6}]
    state = main.get_state(thread())
    assert (state.values, state.next, state.metadata) == (None, ("main",), metadata("input", 0))
    assert main.invoke(api.Command(resume="r"), thread()) == {"a": 6, "answer": "r"}
    assert counts(folder) == {"inc": 2}
    assert [s.metadata for s in main.get_state_history(thread())] == [
        metadata("loop", 1),
        metadata("input", 0),
        metadata("input", -1),
    ]


def test_several_interrupts_in_sequence(api, folder):
    inc_ = api.shared(inc)
    interrupt = api.interrupt

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        r1 = interrupt("one")
        r2 = interrupt("two")
        r3 = interrupt("three")
        return [a, r1, r2, r3]

    seen = []
    returned = main.invoke(1, thread())
    for answer in ("A", "B", "C"):
        state = main.get_state(thread())
        check_interrupt_ids(api, returned["__interrupt__"], state)
        seen.append(interrupt_values(returned["__interrupt__"]))
        # Every resume resumes from the same 'input' checkpoint.
        assert state.metadata == metadata("input", -1)
        returned = main.invoke(api.Command(resume=answer), thread())
    assert seen == [["one"], ["two"], ["three"]]
    assert returned == [2, "A", "B", "C"]
    assert counts(folder) == {"inc": 1}
    assert [s.metadata for s in main.get_state_history(thread())] == [
        metadata("loop", 0),
        metadata("input", -1),
    ]


def test_interrupt_inside_a_task(api, folder):
    inc_ = api.shared(inc)
    ask = ask_task(api, folder)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        b = ask(a).result()
        return [a, b, inc_(folder, 10).result()]

    returned = main.invoke(1, thread())
    assert interrupt_values(returned["__interrupt__"]) == ["ask 2"]
    state = main.get_state(thread())
    check_interrupt_ids(api, returned["__interrupt__"], state)
    # The interrupt is the entrypoint's task's: no task of the state is named 'ask'.
    assert [task_view(t) for t in state.tasks] == [
        ("main", ("__pregel_pull", "main"), None, ("ask 2",), None, None)
    ]
    assert counts(folder) == {"ask": 1, "inc": 1}
    assert main.invoke(api.Command(resume="Z"), thread()) == [2, "2:Z", 11]
    # The asking task runs again from its start; the finished inc is not re-run.
    assert counts(folder) == {"answered": 1, "ask": 2, "inc": 2}


def test_resume_by_interrupt_id(api, folder):
    inc_ = api.shared(inc)
    ask = ask_task(api, folder)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        return [a, ask(a).result()]

    returned = main.invoke(1, thread())
    interrupt_id = main.get_state(thread()).interrupts[0].id
    assert interrupt_id == returned["__interrupt__"][0].id
    assert main.invoke(api.Command(resume={interrupt_id: "by id"}), thread()) == [2, "2:by id"]
    assert counts(folder) == {"answered": 1, "ask": 2, "inc": 1}


def test_a_resume_map_is_any_dict_keyed_by_interrupt_ids(api, folder):
    interrupt = api.interrupt

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        return [interrupt("q1"), interrupt("q2")]

    first = main.invoke(1, thread())["__interrupt__"][0]
    assert first.value == "q1"
    # An id that matches nothing, and an empty map, answer nothing: it asks again.
    for resume in ({"0" * 32: "x"}, {}):
        again = main.invoke(api.Command(resume=resume), thread())["__interrupt__"]
        assert [(i.value, i.id) for i in again] == [("q1", first.id)]
    # A dict with other keys is an answer like any value.
    second = main.invoke(api.Command(resume={"not": "an id"}), thread())["__interrupt__"]
    assert [i.value for i in second] == ["q2"]
    # The call's first interrupt id also answers its later interrupts (LangGraph's
    # compatibility with versions that gave them all that id).
    assert main.invoke(api.Command(resume={first.id: "B"}), thread()) == [{"not": "an id"}, "B"]


def test_a_plain_resume_with_several_pending_interrupts_is_refused(api, folder):
    ask = ask_task(api, folder)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        futures = [ask(i) for i in range(3)]
        return [f.result() for f in futures]

    assert "__interrupt__" in main.invoke(1, thread())
    with pytest.raises(RuntimeError, match="multiple pending interrupts, you must specify"):
        main.invoke(api.Command(resume="S"), thread())


def test_resume_of_a_body_interrupt_by_id(api, folder):
    main = interrupting_program(api, folder)
    returned = main.invoke(1, thread())
    interrupt_id = check_interrupt_ids(api, returned["__interrupt__"], main.get_state(thread()))
    assert main.invoke(api.Command(resume={interrupt_id: "y"}), thread()) == {"a": 2, "answer": "y"}


def test_streaming_an_interrupt_in_the_default_mode(api, folder):
    main = interrupting_program(api, folder)
    chunks = list(main.stream(1, thread()))
    assert normalized(chunks) == [{"inc": 2}, {"__interrupt__": ({"q": 2},)}]
    streamed = chunks[-1]["__interrupt__"]
    assert isinstance(streamed[0], api.Interrupt)
    assert streamed[0].id == main.get_state(thread()).interrupts[0].id
    assert list(main.stream(api.Command(resume="y"), thread())) == [
        {"main": {"a": 2, "answer": "y"}}
    ]


def test_streaming_an_interrupt_in_updates_and_values_modes(api, folder):
    main = interrupting_program(api, folder)
    modes = ["updates", "values"]
    # Surprising: the interrupt is yielded as an update and then again as the values.
    assert normalized(list(main.stream(1, thread(), stream_mode=modes))) == [
        ("updates", {"inc": 2}),
        ("updates", {"__interrupt__": ({"q": 2},)}),
        ("values", {"__interrupt__": ({"q": 2},)}),
    ]
    assert list(main.stream(api.Command(resume="y"), thread(), stream_mode=modes)) == [
        ("values", None),
        ("updates", {"main": {"a": 2, "answer": "y"}}),
        ("values", {"a": 2, "answer": "y"}),
    ]


def test_streaming_an_interrupt_in_values_mode(api, folder):
    main = interrupting_program(api, folder)
    assert normalized(list(main.stream(1, thread(), stream_mode="values"))) == [
        {"__interrupt__": ({"q": 2},)}
    ]
    # Surprising: the resume starts with the interrupted checkpoint's values, None.
    assert list(main.stream(api.Command(resume="y"), thread(), stream_mode="values")) == [
        None,
        {"a": 2, "answer": "y"},
    ]


@pytest.mark.parametrize("modes", [["values"], ["updates", "values"], ["updates"]])
def test_streaming_an_interrupt_in_v2(api, folder, modes):
    main = interrupting_program(api, folder)
    chunks = list(main.stream(1, thread(), stream_mode=modes, version="v2"))
    pending = main.get_state(thread()).interrupts
    expected = {
        # The interrupts move to their own field of the values chunk, popped from the
        # dict the updates chunk holds too (surprising: that one then shows {}).
        ("values",): [{"type": "values", "ns": (), "data": {}, "interrupts": pending}],
        ("updates", "values"): [
            {"type": "updates", "ns": (), "data": {"inc": 2}},
            {"type": "updates", "ns": (), "data": {}},
            {"type": "values", "ns": (), "data": {}, "interrupts": pending},
        ],
        ("updates",): [
            {"type": "updates", "ns": (), "data": {"inc": 2}},
            {"type": "updates", "ns": (), "data": {"__interrupt__": pending}},
        ],
    }
    assert chunks == expected[tuple(modes)]


def test_streaming_an_interrupt_inside_a_task(api, folder):
    inc_ = api.shared(inc)
    ask = ask_task(api, folder)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = inc_(folder, x).result()
        b = ask(a).result()
        return [a, b, inc_(folder, 10).result()]

    modes = ["updates", "values"]
    assert normalized(list(main.stream(1, thread(), stream_mode=modes))) == [
        ("updates", {"inc": 2}),
        ("updates", {"__interrupt__": ("ask 2",)}),
        ("values", {"__interrupt__": ("ask 2",)}),
    ]
    assert list(main.stream(api.Command(resume="Q"), thread(), stream_mode=modes)) == [
        ("values", None),
        ("updates", {"ask": "2:Q"}),
        ("updates", {"inc": 11}),
        ("updates", {"main": [2, "2:Q", 11]}),
        ("values", [2, "2:Q", 11]),
    ]
    assert counts(folder) == {"answered": 1, "ask": 2, "inc": 2}


@pytest.mark.parametrize("mode", ["tasks", "debug"])
def test_an_interrupted_task_streams_no_task_result(api, folder, mode):
    ask = ask_task(api, folder)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        return ask(x).result()

    def events(chunks: list) -> list:
        if mode == "debug":  # its task events; checkpoints aside
            payloads = [
                c[1]["payload"] for c in chunks if c[0] == mode and "name" in c[1]["payload"]
            ]
        else:
            payloads = [c[1] for c in chunks if c[0] == mode]
        return [(p["name"], "error" in p, len(p.get("interrupts", ()))) for p in payloads]

    # The task's start, the entrypoint's end with the interrupt: no result for the task.
    chunks = list(main.stream(1, thread(), stream_mode=[mode, "updates"]))
    assert events(chunks) == [("main", False, 0), ("ask", False, 0), ("main", True, 1)]
    chunks = list(main.stream(api.Command(resume="Q"), thread(), stream_mode=[mode, "updates"]))
    assert events(chunks) == [
        ("main", False, 0),
        ("ask", False, 0),
        ("ask", True, 0),
        ("main", True, 0),
    ]


def test_the_entrypoints_task_has_one_id_in_the_stream_the_state_and_the_resume(api, folder):
    main = interrupting_program(api, folder)

    def main_ids(chunks: list) -> set:
        return {
            chunk["id"] for mode, chunk in chunks if mode == "tasks" and chunk["name"] == "main"
        }

    first = main_ids(list(main.stream(1, thread(), stream_mode=["tasks"])))
    state = main.get_state(thread())
    assert first == {state.tasks[0].id}
    resumed = main_ids(list(main.stream(api.Command(resume="y"), thread(), stream_mode=["tasks"])))
    assert resumed == first


def test_async_entrypoint_interrupt_and_resume(api, folder):
    inc_ = api.shared(inc)
    interrupt = api.interrupt

    @api.entrypoint(checkpointer=api.checkpointer())
    async def main(x):
        a = await inc_(folder, x)
        answer = interrupt({"a": a})
        b = await inc_(folder, a)
        return [a, answer, b]

    returned = asyncio.run(main.ainvoke(1, thread()))
    assert interrupt_values(returned["__interrupt__"]) == [{"a": 2}]
    check_interrupt_ids(api, returned["__interrupt__"], main.get_state(thread()))
    assert asyncio.run(main.ainvoke(api.Command(resume="R"), thread())) == [2, "R", 3]
    assert counts(folder) == {"inc": 2}
    assert main.get_state(thread()).metadata == metadata("loop", 0)


# -- 17. durability ----------------------------------------------------------------------

DURABILITIES = ["sync", "async", "exit"]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_every_mode_of_a_checkpointed_run_in_order(api, folder, durability):
    main = two_step_program(api, folder)
    modes = ["values", "updates", "checkpoints", "tasks", "debug"]

    def view(mode: str, chunk: Any) -> tuple:
        if mode == "checkpoints":
            return (mode, chunk["metadata"]["source"])
        if mode == "debug":
            payload = chunk["payload"]
            return (mode, chunk["type"], payload.get("name") or payload["metadata"]["source"])
        if mode == "tasks":
            return (mode, chunk["name"], "result" in chunk)
        return (mode, chunk)

    chunks = main.stream(1, thread(), stream_mode=modes, durability=durability)
    assert [view(*chunk) for chunk in chunks] == [
        ("checkpoints", "input"),
        ("debug", "checkpoint", "input"),
        ("tasks", "main", False),
        ("debug", "task", "main"),
        ("tasks", "inc", False),
        ("debug", "task", "inc"),
        ("updates", {"inc": 2}),
        ("tasks", "inc", True),
        ("debug", "task_result", "inc"),
        ("tasks", "flaky", False),
        ("debug", "task", "flaky"),
        ("updates", {"flaky": 200}),
        ("tasks", "flaky", True),
        ("debug", "task_result", "flaky"),
        ("updates", {"main": {"r": 200, "prev": None}}),
        ("tasks", "main", True),
        ("debug", "task_result", "main"),
        # The run's values come before its loop checkpoint.
        ("values", {"r": 200, "prev": None}),
        ("checkpoints", "loop"),
        ("debug", "checkpoint", "loop"),
    ]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_durability_gives_the_same_results_and_state(api, folder, durability):
    inc_ = api.shared(inc)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x, *, previous=None):
        return {"v": inc_(folder, x).result(), "p": previous}

    assert main.invoke(1, thread(), durability=durability) == {"v": 2, "p": None}
    assert main.invoke(2, thread(), durability=durability) == {"v": 3, "p": {"v": 2, "p": None}}
    assert list(main.stream(3, thread(), durability=durability)) == [
        {"inc": 4},
        {"main": {"v": 4, "p": {"v": 3, "p": {"v": 2, "p": None}}}},
    ]
    state = main.get_state(thread())
    assert state.values == {"v": 4, "p": {"v": 3, "p": {"v": 2, "p": None}}}
    assert state.metadata == metadata("loop", 4)
    assert state.next == ()
    assert state.tasks == ()
    history = [s.metadata for s in main.get_state_history(thread())]
    if durability == "exit":
        # 'exit' saves no 'input' checkpoint of a run that finishes.
        assert history == [metadata("loop", 4), metadata("loop", 2), metadata("loop", 0)]
    else:
        assert history == [
            metadata("loop", 4),
            metadata("input", 3),
            metadata("loop", 2),
            metadata("input", 1),
            metadata("loop", 0),
            metadata("input", -1),
        ]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_durability_with_ainvoke(api, folder, durability):
    main = two_step_program(api, folder)
    result = asyncio.run(main.ainvoke(1, thread(), durability=durability))
    assert result == {"r": 200, "prev": None}
    assert main.get_state(thread()).metadata == metadata("loop", 0)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_durability_keeps_finished_tasks_of_a_failed_run(api, folder, durability):
    main = four_step_program(api, folder)
    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread(), durability=durability)
    state = main.get_state(thread())
    assert (state.values, state.next, state.metadata) == (None, ("main",), metadata("input", -1))
    assert [t.error for t in state.tasks] == ["ValueError('boom')"]
    succeed_from_now(folder)
    assert main.invoke(None, thread(), durability=durability) == [2, 3, 300, 301]
    assert counts(folder) == {"flaky": 2, "inc": 3}


@pytest.mark.parametrize("durability", DURABILITIES)
def test_durability_with_an_interrupt(api, folder, durability):
    main = interrupting_program(api, folder)
    returned = main.invoke(1, thread(), durability=durability)
    assert interrupt_values(returned["__interrupt__"]) == [{"q": 2}]
    state = main.get_state(thread())
    assert (state.values, state.next, state.metadata) == (None, ("main",), metadata("input", -1))
    resumed = main.invoke(api.Command(resume=1), thread(), durability=durability)
    assert resumed == {"a": 2, "answer": 1}
    assert counts(folder) == {"inc": 1}


# -- 18, 19. with a cache, with retries --------------------------------------------------


def test_checkpointer_and_cache_together(api, folder):
    cache, CachePolicy = cache_and_policy(api)

    def square(x):
        record(folder, "square")
        return x * x

    square_ = api.task(cache_policy=CachePolicy())(square)
    flaky_ = api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer(), cache=cache)
    def main(x, *, previous=None):
        return {"a": square_(x).result(), "prev": previous}

    assert main.invoke(3, thread()) == {"a": 9, "prev": None}
    assert main.invoke(3, thread()) == {"a": 9, "prev": {"a": 9, "prev": None}}
    assert list(main.stream(3, thread("other"))) == [
        {"square": 9, "__metadata__": {"cached": True}},
        {"main": {"a": 9, "prev": None}},
    ]
    assert main.get_state(thread()).metadata == metadata("loop", 2)
    assert counts(folder) == {"square": 1}

    @api.entrypoint(checkpointer=api.checkpointer(), cache=cache)
    def second(x):
        a = square_(x).result()
        return [a, flaky_(folder, a).result()]

    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        second.invoke(4, thread())
    succeed_from_now(folder)
    # The resume replays the checkpointed square: no cached marker, no update.
    assert list(second.stream(None, thread(), stream_mode=["updates", "values"])) == [
        ("values", None),
        ("updates", {"flaky": 1600}),
        ("updates", {"second": [16, 1600]}),
        ("values", [16, 1600]),
    ]
    assert counts(folder) == {"flaky": 2, "square": 2}


def test_a_retried_task_is_checkpointed_with_its_final_result(api, folder):
    def retried(x):
        record(folder, "retried")
        if count(folder, "retried") < 3:
            raise ValueError("again")
        return x + 1

    policy = api.RetryPolicy(initial_interval=0.01, jitter=False, retry_on=ValueError)
    retried_ = api.task(retry_policy=policy)(retried)
    inc_, flaky_ = api.shared(inc), api.shared(flaky)

    @api.entrypoint(checkpointer=api.checkpointer())
    def main(x):
        a = retried_(x).result()
        return [a, flaky_(folder, a).result(), inc_(folder, a).result()]

    fail_from_now(folder)
    with pytest.raises(ValueError, match="boom"):
        main.invoke(1, thread())
    assert counts(folder) == {"flaky": 1, "retried": 3}
    state = main.get_state(thread())
    assert [t.error for t in state.tasks] == ["ValueError('boom')"]
    succeed_from_now(folder)
    assert list(main.stream(None, thread())) == [
        {"flaky": 200},
        {"inc": 3},
        {"main": [2, 200, 3]},
    ]
    assert counts(folder) == {"flaky": 2, "inc": 1, "retried": 3}
