"""Differential tests of streaming: the same program streamed by ``langgraph.func`` and by
``paralleltask`` (process pool, threads, inline) must yield the same chunks.

Expected chunks are literals that LangGraph's run confirms. ``debug`` and ``tasks``
chunks carry fields that legitimately differ (task ids, timestamps): :func:`normalized`
checks their types and replaces them with placeholders that keep their structure (the
same id for a task's ``task`` and ``task_result``, distinct ids for distinct tasks).

Known, documented difference (asserted, not compared): ``stream_mode="messages"`` is
refused by paralleltask with ``NotImplementedError``; LangGraph streams nothing for it.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.impls import (
    IMPLS,
    INLINE,
    LANGGRAPH,
    PARALLELTASK,
    THREAD,
    Api,
    make_api,
    xfail_on,
)


@pytest.fixture(params=IMPLS)
def api(request) -> Api:
    return make_api(request.param)


async def acollect(stream) -> list:
    return [chunk async for chunk in stream]


def _error(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args)
    return value


def normalized(chunks: list) -> list:
    """``debug``/``tasks`` chunks (bare or as ``(mode, chunk)``; others pass) with ids and
    timestamps checked and replaced by ``<id>`` and ``<ts>``; an ``error`` exception by
    ``(type name, args)``.

    Ids must be non-empty strings, and each ``task_result`` must carry the id of a task of
    its name that started before it and has not finished yet. That ids are distinct is
    checked by tests of its own (a nested call on the process pool may reuse an id in a
    fresh process: see test_nested_task_ids_are_distinct_in_a_fresh_process).
    """
    running: collections.Counter = collections.Counter()
    out = []
    for item in chunks:
        mode, chunk = item if isinstance(item, tuple) else (None, item)
        if mode not in (None, "tasks", "debug"):
            out.append(item)
            continue
        chunk = dict(chunk)
        if "timestamp" in chunk:  # a debug chunk
            stamp = chunk["timestamp"]
            assert isinstance(stamp, str)
            assert datetime.datetime.fromisoformat(stamp).tzinfo is not None
            chunk["timestamp"] = "<ts>"
            chunk["payload"] = payload = dict(chunk["payload"])
        else:
            payload = chunk
        task_id = payload["id"]
        assert isinstance(task_id, str) and task_id
        key = (task_id, payload["name"], mode)
        if "result" in payload:
            assert running[key] > 0, f"a result for a task that is not running: {key}"
            running[key] -= 1
        else:
            running[key] += 1
        payload["id"] = "<id>"
        if "error" in payload:
            payload["error"] = _error(payload["error"])
        out.append(chunk if mode is None else (mode, chunk))
    return out


def task_chunk(name: str, input: Any, start: bool = False) -> dict:
    trigger = "__start__" if start else "__pregel_push"
    return {"id": "<id>", "name": name, "input": input, "triggers": (trigger,)}


def result_chunk(name: str, result: dict, error: Any = None) -> dict:
    return {"id": "<id>", "name": name, "error": error, "result": result, "interrupts": []}


def debug(kind: str, payload: dict) -> dict:
    return {"step": 0, "timestamp": "<ts>", "type": kind, "payload": payload}


# -- one program, many modes -------------------------------------------------------------


def chain_program(api: Api) -> Any:
    """inc(1) -> renamed(2) -> outer(4) calling inc(4) -> final(value=50, save=0)."""
    writer_of = api.get_stream_writer

    def inc(x):
        writer_of()({"inc": x})
        return x + 1

    inc_task = api.task(inc)
    double_task = api.task(name="renamed")(lambda x: 2 * x)

    def outer(x):
        return inc_task(x).result() * 10

    outer_task = api.task(outer)

    @api.entrypoint()
    def main(x):
        writer_of()("body-start")
        a = inc_task(x).result()
        b = double_task(a).result()
        c = outer_task(b).result()
        return api.final(value=c, save=0)

    return main


CHAIN_UPDATES = [{"inc": 2}, {"renamed": 4}, {"inc": 5}, {"outer": 50}, {"main": 50}]
CHAIN_CUSTOM = ["body-start", {"inc": 1}, {"inc": 4}]
CHAIN_TASKS = [
    task_chunk("main", 1, start=True),
    task_chunk("inc", ((1,), {})),
    result_chunk("inc", {"__return__": 2}),
    task_chunk("renamed", ((2,), {})),
    result_chunk("renamed", {"__return__": 4}),
    task_chunk("outer", ((4,), {})),
    task_chunk("inc", ((4,), {})),
    result_chunk("inc", {"__return__": 5}),
    result_chunk("outer", {"__return__": 50}),
    result_chunk("main", {"__end__": 50}),
]


def test_updates_is_the_default_mode(api):
    main = chain_program(api)
    assert list(main.stream(1)) == CHAIN_UPDATES
    assert list(main.stream(1, stream_mode="updates")) == CHAIN_UPDATES


def test_values_mode_yields_the_final_value(api):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode="values")) == [50]


def test_custom_mode(api):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode="custom")) == CHAIN_CUSTOM


def test_tasks_mode(api):
    main = chain_program(api)
    assert normalized(list(main.stream(1, stream_mode="tasks"))) == CHAIN_TASKS


def test_debug_mode(api):
    main = chain_program(api)
    chunks = list(main.stream(1, stream_mode="debug"))
    expected = [debug("task_result" if "result" in c else "task", c) for c in CHAIN_TASKS]
    assert normalized(chunks) == expected


def test_checkpoints_mode_without_a_checkpointer_is_empty(api):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode="checkpoints")) == []
    updates = [("updates", c) for c in CHAIN_UPDATES]
    assert list(main.stream(1, stream_mode=["checkpoints", "updates"])) == updates


def test_a_list_of_one_mode_yields_tagged_tuples(api):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode=["updates"])) == [("updates", c) for c in CHAIN_UPDATES]
    assert list(main.stream(1, stream_mode=["values"])) == [("values", 50)]


def test_a_list_of_modes_interleaves_them_in_langgraphs_order(api):
    main = chain_program(api)
    chunks = list(main.stream(1, stream_mode=["custom", "updates", "values"]))
    assert chunks == [
        ("custom", "body-start"),
        ("custom", {"inc": 1}),
        ("updates", {"inc": 2}),
        ("updates", {"renamed": 4}),
        ("custom", {"inc": 4}),
        ("updates", {"inc": 5}),
        ("updates", {"outer": 50}),
        ("updates", {"main": 50}),
        ("values", 50),
    ]


def test_a_list_of_modes_with_tasks_and_debug(api):
    main = chain_program(api)
    chunks = normalized(list(main.stream(1, stream_mode=["tasks", "debug", "updates"])))
    expected = []
    updates = iter(CHAIN_UPDATES)
    for chunk in CHAIN_TASKS:
        if "result" in chunk and chunk["error"] is None:
            expected.append(("updates", next(updates)))
        expected.append(("tasks", chunk))
        expected.append(("debug", debug("task_result" if "result" in chunk else "task", chunk)))
    assert chunks == expected


def test_v2_yields_typed_dicts(api):
    main = chain_program(api)
    assert list(main.stream(1, version="v2")) == [
        {"type": "updates", "ns": (), "data": c} for c in CHAIN_UPDATES
    ]
    chunks = list(main.stream(1, stream_mode=["custom", "values"], version="v2"))
    # A task's custom chunk carries its caller's namespace: compared in the next test.
    assert [(c["type"], c["data"]) for c in chunks] == [
        *(("custom", c) for c in CHAIN_CUSTOM),
        ("values", 50),
    ]
    assert all(set(c) >= {"type", "ns", "data"} for c in chunks)
    assert chunks[0] == {"type": "custom", "ns": (), "data": "body-start"}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_v2_custom_chunks_from_tasks_carry_the_callers_namespace(api, request, is_async):
    xfail_on(
        request,
        api,
        PARALLELTASK,
        "paralleltask gives every v2 chunk ns=(); LangGraph gives a task's custom chunk "
        "the path of its callers, ('main:<main id>',) or ('main:<id>', 'outer:<id>')",
    )
    main = chain_program(api)
    if is_async:
        stream = main.astream(1, stream_mode=["custom", "tasks"], version="v2")
        chunks = asyncio.run(acollect(stream))
    else:
        chunks = list(main.stream(1, stream_mode=["custom", "tasks"], version="v2"))
    ids = {c["data"]["name"]: c["data"]["id"] for c in chunks if c["type"] == "tasks"}
    main_ns = f"main:{ids['main']}"
    assert [(c["ns"], c["data"]) for c in chunks if c["type"] == "custom"] == [
        ((), "body-start"),
        ((main_ns,), {"inc": 1}),
        ((main_ns, f"outer:{ids['outer']}"), {"inc": 4}),
    ]


def test_subgraphs_true_yields_namespaced_chunks(api, request):
    xfail_on(
        request,
        api,
        PARALLELTASK,
        "paralleltask refuses stream(subgraphs=True) (NotImplementedError); LangGraph yields "
        "(ns, chunk) (or (ns, mode, chunk)) tuples",
    )
    main = chain_program(api)
    assert list(main.stream(1, subgraphs=True)) == [((), c) for c in CHAIN_UPDATES]
    chunks = list(main.stream(1, stream_mode=["values"], subgraphs=True))
    assert chunks == [((), "values", 50)]


def test_v2_values_chunk_carries_interrupts(api, request):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode="values", version="v2")) == [
        {"type": "values", "ns": (), "data": 50, "interrupts": ()}
    ]


def test_a_tuple_of_modes_yields_bare_chunks_as_langgraph(api, request):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode=("updates", "values"))) == [*CHAIN_UPDATES, 50]


def test_an_empty_list_of_modes_yields_nothing(api, request):
    main = chain_program(api)
    assert list(main.stream(1, stream_mode=[])) == []


def test_invoke_with_another_stream_mode_returns_the_chunks(api):
    main = chain_program(api)
    assert main.invoke(1) == 50
    assert main.invoke(1, stream_mode="values") == 50
    assert main.invoke(1, stream_mode="updates") == CHAIN_UPDATES
    assert main.invoke(1, stream_mode="custom") == CHAIN_CUSTOM
    assert main.invoke(1, stream_mode=["values"]) == [("values", 50)]
    assert main.invoke(1, stream_mode=["custom"]) == [("custom", c) for c in CHAIN_CUSTOM]
    assert normalized(main.invoke(1, stream_mode="tasks")) == CHAIN_TASKS


def test_ainvoke_and_astream_of_a_sync_entrypoint(api):
    main = chain_program(api)

    async def scenario():
        return (
            await main.ainvoke(1, stream_mode="updates"),
            await main.ainvoke(1, stream_mode=["values"]),
            await acollect(main.astream(1)),
            await acollect(main.astream(1, stream_mode="custom")),
            normalized(await acollect(main.astream(1, stream_mode="tasks"))),
        )

    assert asyncio.run(scenario()) == (
        CHAIN_UPDATES,
        [("values", 50)],
        CHAIN_UPDATES,
        CHAIN_CUSTOM,
        CHAIN_TASKS,
    )


def test_invoke_with_version_v2(api, request):
    xfail_on(
        request,
        api,
        PARALLELTASK,
        "paralleltask refuses invoke(version='v2') in 'values' mode (NotImplementedError): "
        "LangGraph returns its GraphOutput there",
    )
    main = chain_program(api)
    assert main.invoke(1, stream_mode="updates", version="v2") == [
        {"type": "updates", "ns": (), "data": c} for c in CHAIN_UPDATES
    ]
    output = main.invoke(1, version="v2")  # LangGraph: GraphOutput(value=50, interrupts=())
    assert (output.value, output.interrupts) == (50, ())
    chunks = asyncio.run(main.ainvoke(1, stream_mode=["updates"], version="v2"))
    assert chunks == [{"type": "updates", "ns": (), "data": c} for c in CHAIN_UPDATES]


# -- async entrypoints -------------------------------------------------------------------


def async_program(api: Api) -> Any:
    writer_of = api.get_stream_writer

    async def triple(x):
        writer_of()(f"triple {x}")
        await asyncio.sleep(0)
        return 3 * x

    atriple = api.task(triple)
    plus = api.task(name="plus_one")(lambda x: x + 1)

    @api.entrypoint()
    async def amain(x, writer):
        writer("body")
        a = await atriple(x)
        b = await plus(a)
        c = await atriple(b)
        return api.final(value=[a, b, c], save=None)

    return amain


def test_async_entrypoint_streams(api):
    amain = async_program(api)

    async def scenario():
        return (
            await acollect(amain.astream(2)),
            await acollect(amain.astream(2, stream_mode="values")),
            await acollect(amain.astream(2, stream_mode=["custom", "updates", "values"])),
            await amain.ainvoke(2, stream_mode="updates"),
            await amain.ainvoke(2),
        )

    updates, values, mixed, invoked, value = asyncio.run(scenario())
    expected_updates = [{"triple": 6}, {"plus_one": 7}, {"triple": 21}, {"amain": [6, 7, 21]}]
    assert updates == expected_updates
    assert invoked == expected_updates
    assert values == [[6, 7, 21]]
    assert value == [6, 7, 21]
    assert mixed == [
        ("custom", "body"),
        ("custom", "triple 2"),
        ("updates", {"triple": 6}),
        ("updates", {"plus_one": 7}),
        ("custom", "triple 7"),
        ("updates", {"triple": 21}),
        ("updates", {"amain": [6, 7, 21]}),
        ("values", [6, 7, 21]),
    ]


def test_async_entrypoint_tasks_and_debug(api):
    amain = async_program(api)

    async def scenario():
        return await acollect(amain.astream(2, stream_mode=["tasks", "debug"]))

    tasks = [
        task_chunk("amain", 2, start=True),
        task_chunk("triple", ((2,), {})),
        result_chunk("triple", {"__return__": 6}),
        task_chunk("plus_one", ((6,), {})),
        result_chunk("plus_one", {"__return__": 7}),
        task_chunk("triple", ((7,), {})),
        result_chunk("triple", {"__return__": 21}),
        result_chunk("amain", {"__end__": [6, 7, 21]}),
    ]
    expected = []
    for chunk in tasks:
        expected.append(("tasks", chunk))
        expected.append(("debug", debug("task_result" if "result" in chunk else "task", chunk)))
    assert normalized(asyncio.run(scenario())) == expected


def test_async_entrypoint_v2(api):
    amain = async_program(api)
    chunks = asyncio.run(acollect(amain.astream(2, stream_mode=["custom"], version="v2")))
    assert [(c["type"], c["data"]) for c in chunks] == [
        ("custom", "body"),
        ("custom", "triple 2"),
        ("custom", "triple 7"),
    ]
    assert chunks[0] == {"type": "custom", "ns": (), "data": "body"}
    chunks = asyncio.run(acollect(amain.astream(2, version="v2")))
    assert chunks[-1] == {"type": "updates", "ns": (), "data": {"amain": [6, 7, 21]}}


# -- task inputs, errors -----------------------------------------------------------------


def test_task_input_in_tasks_chunks_holds_args_and_kwargs(api):
    join = api.task(lambda a, b="-", *, sep="": f"{a}{sep}{b}")

    @api.entrypoint()
    def main(x):
        return [join(x).result(), join(x, "y", sep="+").result(), join(a=x, sep=":").result()]

    chunks = normalized(list(main.stream("x", stream_mode="tasks")))
    assert [c["input"] for c in chunks if "input" in c] == [
        "x",
        (("x",), {}),
        (("x", "y"), {"sep": "+"}),
        ((), {"a": "x", "sep": ":"}),
    ]
    assert list(main.stream("x")) == [
        {"<lambda>": "x-"},
        {"<lambda>": "x+y"},
        {"<lambda>": "x:-"},
        {"main": ["x-", "x+y", "x:-"]},
    ]


def boom_program(api: Api, catch: bool, is_async: bool) -> Any:
    def boom(x):
        raise ValueError(f"boom {x}")

    boom_task = api.task(boom)

    if is_async:

        @api.entrypoint()
        async def main(x):
            try:
                return await boom_task(x)
            except ValueError:
                if catch:
                    return "caught"
                raise

    else:

        @api.entrypoint()
        def main(x):
            try:
                return boom_task(x).result()
            except ValueError:
                if catch:
                    return "caught"
                raise

    return main


def collect_until_error(main: Any, is_async: bool, **kwargs: Any) -> tuple[list, Any]:
    chunks: list = []

    async def consume():
        async for chunk in main.astream(1, **kwargs):
            chunks.append(chunk)

    try:
        if is_async:
            asyncio.run(consume())
        else:
            for chunk in main.stream(1, **kwargs):
                chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_caught_task_error_in_debug_and_tasks(api, is_async):
    main = boom_program(api, catch=True, is_async=is_async)
    chunks, error = collect_until_error(main, is_async, stream_mode=["tasks", "debug", "updates"])
    assert error is None
    tasks = [
        task_chunk("main", 1, start=True),
        task_chunk("boom", ((1,), {})),
        result_chunk("boom", {}, error=("ValueError", ("boom 1",))),
        result_chunk("main", {"__end__": "caught"}),
    ]
    expected = []
    for chunk in tasks:
        if chunk["name"] == "main" and "result" in chunk:
            expected.append(("updates", {"main": "caught"}))
        expected.append(("tasks", chunk))
        expected.append(("debug", debug("task_result" if "result" in chunk else "task", chunk)))
    assert normalized(chunks) == expected
    errors = [c["error"] for mode, c in chunks if mode == "tasks" and c.get("error")]
    assert len(errors) == 1 and type(errors[0]) is ValueError


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_an_uncaught_task_error_ends_the_stream_with_the_entrypoints_result(api, is_async):
    main = boom_program(api, catch=False, is_async=is_async)
    chunks, error = collect_until_error(main, is_async, stream_mode=["tasks", "updates", "values"])
    assert type(error) is ValueError and str(error) == "boom 1"
    assert normalized(chunks) == [
        ("tasks", task_chunk("main", 1, start=True)),
        ("tasks", task_chunk("boom", ((1,), {}))),
        ("tasks", result_chunk("boom", {}, error=("ValueError", ("boom 1",)))),
        ("tasks", result_chunk("main", {}, error=("ValueError", ("boom 1",)))),
    ]
    chunks, error = collect_until_error(main, is_async)
    assert (chunks, type(error)) == ([], ValueError)


def test_task_error_note_names_the_id_streamed_for_the_task(api, request):
    main = boom_program(api, catch=False, is_async=False)
    chunks, error = collect_until_error(main, False, stream_mode="tasks")
    ids = {c["name"]: c["id"] for c in chunks}
    notes = getattr(error, "__notes__", [])
    assert f"During task with name 'main' and id '{ids['main']}'" in notes
    assert f"During task with name 'boom' and id '{ids['boom']}'" in notes


# -- nested tasks ------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_nested_task_streams_inner_before_outer(api, is_async):
    writer_of = api.get_stream_writer

    def leaf(x):
        writer_of()(f"leaf {x}")
        return x + 1

    leaf_task = api.task(name="leaf")(leaf)

    def middle(x):
        writer_of()(f"middle {x}")
        return leaf_task(x).result() * 10

    middle_task = api.task(name="middle")(middle)

    def top(x):
        return middle_task(x).result() + leaf_task(x).result()

    top_task = api.task(name="top")(top)

    if is_async:

        @api.entrypoint()
        async def main(x):
            return await top_task(x)

        chunks = asyncio.run(acollect(main.astream(1, stream_mode=["custom", "updates", "tasks"])))
    else:

        @api.entrypoint()
        def main(x):
            return top_task(x).result()

        chunks = list(main.stream(1, stream_mode=["custom", "updates", "tasks"]))

    assert normalized([c for c in chunks if c[0] == "tasks"]) == [
        ("tasks", task_chunk("main", 1, start=True)),
        ("tasks", task_chunk("top", ((1,), {}))),
        ("tasks", task_chunk("middle", ((1,), {}))),
        ("tasks", task_chunk("leaf", ((1,), {}))),
        ("tasks", result_chunk("leaf", {"__return__": 2})),
        ("tasks", result_chunk("middle", {"__return__": 20})),
        ("tasks", task_chunk("leaf", ((1,), {}))),
        ("tasks", result_chunk("leaf", {"__return__": 2})),
        ("tasks", result_chunk("top", {"__return__": 22})),
        ("tasks", result_chunk("main", {"__end__": 22})),
    ]
    assert [c for c in chunks if c[0] != "tasks"] == [
        ("custom", "middle 1"),
        ("custom", "leaf 1"),
        ("updates", {"leaf": 2}),
        ("updates", {"middle": 20}),
        ("custom", "leaf 1"),
        ("updates", {"leaf": 2}),
        ("updates", {"top": 22}),
        ("updates", {"main": 22}),
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_entrypoint_update_streams_when_the_body_returns_before_its_tasks_end(
    api, request, is_async
):
    if not is_async:
        xfail_on(
            request,
            api,
            {INLINE},
            "documented: the inline executor runs a sync task at its call, so the late "
            "task has finished before the body returns",
        )
    if is_async:

        async def late(x):
            await asyncio.sleep(0.3)
            return x

        late_task = api.task(name="late")(late)

        @api.entrypoint()
        async def main(x):
            late_task(x)  # not awaited: the run still waits for it before it ends
            return "body done"

        chunks = asyncio.run(acollect(main.astream(1, stream_mode=["updates", "values"])))
    else:

        def late(x):
            time.sleep(0.3)
            return x

        late_task = api.task(name="late")(late)

        @api.entrypoint()
        def main(x):
            late_task(x)
            return "body done"

        chunks = list(main.stream(1, stream_mode=["updates", "values"]))
    assert chunks == [
        ("updates", {"main": "body done"}),
        ("updates", {"late": 1}),
        ("values", "body done"),
    ]


def _starts_and_results(chunks: list) -> tuple[list, list]:
    starts = [(c["name"], c["id"]) for c in chunks if "input" in c]
    results = [(c["name"], c["id"]) for c in chunks if "result" in c]
    return starts, results


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_task_ids_are_distinct_and_shared_by_a_tasks_start_and_result(api, is_async):
    echo = api.task(name="echo")(lambda x: x)

    if is_async:

        @api.entrypoint()
        async def main(x):
            return [await echo(x), await echo(x), await echo(x + 1)]

        chunks = asyncio.run(acollect(main.astream(1, stream_mode="tasks")))
    else:

        @api.entrypoint()
        def main(x):
            return [echo(x).result(), echo(x).result(), echo(x + 1).result()]

        chunks = list(main.stream(1, stream_mode="tasks"))
    starts, results = _starts_and_results(chunks)
    assert [name for name, _ in starts] == ["main", "echo", "echo", "echo"]
    assert len({task_id for _, task_id in starts}) == 4
    assert sorted(results) == sorted(starts)  # each result carries its task's id
    assert results[-1] == starts[0]


@pytest.mark.parametrize("impl", [LANGGRAPH, THREAD, INLINE])
def test_nested_task_ids_are_distinct(impl):
    """In this session; the process pool's case needs a fresh process (next test)."""
    if impl == LANGGRAPH:
        pytest.importorskip("langgraph.func")
    main = chain_program(Api(impl))
    starts, results = _starts_and_results(list(main.stream(1, stream_mode="tasks")))
    assert [name for name, _ in starts] == ["main", "inc", "renamed", "outer", "inc"]
    assert len({task_id for _, task_id in starts}) == 5
    assert sorted(results) == sorted(starts)


NESTED_IDS_SCRIPT = textwrap.dedent(
    """
    import json
    from paralleltask import entrypoint, task

    @task
    def inner(x):
        return x + 1

    @task
    def outer(x):
        return inner(x).result() * 10

    @entrypoint()
    def main(x):
        return outer(x).result()

    starts = [(c["name"], c["id"]) for c in main.stream(1, stream_mode="tasks")
              if "input" in c]
    print(json.dumps(starts))
    """
)


def test_nested_task_ids_are_distinct_in_a_fresh_process():
    """A fresh program's first nested call in a worker must not reuse the id of a call
    of the parent (LangGraph: every task of a run has its own id)."""
    done = subprocess.run(
        [sys.executable, "-c", NESTED_IDS_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    starts = json.loads(done.stdout.strip().splitlines()[-1])
    assert [name for name, _ in starts] == ["main", "outer", "inner"]
    ids = [task_id for _, task_id in starts]
    assert len(set(ids)) == 3, f"task ids collide: {starts}"


# -- custom chunks -----------------------------------------------------------------------


def test_custom_chunks_of_parallel_tasks_keep_each_tasks_order(api):
    writer_of = api.get_stream_writer

    def emit(tag, n):
        writer = writer_of()
        for i in range(n):
            writer({"tag": tag, "i": i})
        return tag

    emit_task = api.task(emit)

    @api.entrypoint()
    def main(tags):
        futures = [emit_task(tag, 5) for tag in tags]
        return [f.result() for f in futures]

    tags = ["a", "b", "c", "d"]
    chunks = list(main.stream(tags, stream_mode=["custom", "updates"]))
    assert chunks[-1] == ("updates", {"main": tags})
    for tag in tags:
        mine = [i for i, (mode, c) in enumerate(chunks) if mode == "custom" and c["tag"] == tag]
        assert [chunks[i][1]["i"] for i in mine] == list(range(5))
        update = chunks.index(("updates", {"emit": tag}))
        assert max(mine) < update
    assert len(chunks) == len(tags) * 6 + 1


def test_custom_chunks_from_async_tasks_running_concurrently(api):
    writer_of = api.get_stream_writer

    async def emit(tag):
        writer = writer_of()
        for i in range(3):
            writer((tag, i))
            await asyncio.sleep(0.001)
        return tag

    emit_task = api.task(emit)

    @api.entrypoint()
    async def main(tags):
        return list(await asyncio.gather(*(emit_task(t) for t in tags)))

    chunks = asyncio.run(acollect(main.astream(["x", "y"], stream_mode="custom")))
    assert sorted(chunks) == [("x", 0), ("x", 1), ("x", 2), ("y", 0), ("y", 1), ("y", 2)]
    for tag in "xy":
        assert [i for t, i in chunks if t == tag] == [0, 1, 2]


def test_stream_writer_is_a_harmless_no_op_under_invoke(api):
    writer_of = api.get_stream_writer

    def noisy(x):
        writer_of()({"from": "task"})
        return x * 2

    noisy_task = api.task(noisy)

    async def anoisy(x):
        writer_of()({"from": "atask"})
        return x * 3

    anoisy_task = api.task(anoisy)

    @api.entrypoint()
    def main(x, writer):
        writer("body param")
        writer_of()("body")
        return noisy_task(x).result()

    @api.entrypoint()
    async def amain(x, writer):
        writer("body param")
        return await anoisy_task(x) + await noisy_task(x)

    assert main.invoke(4) == 8
    assert asyncio.run(amain.ainvoke(4)) == 20
    assert list(main.stream(4)) == [{"noisy": 8}, {"main": 8}]
    assert list(main.stream(4, stream_mode="values")) == [8]


def test_injected_writer_of_the_body(api):
    @api.entrypoint()
    def main(x, writer):
        writer({"step": "one"})
        writer(("two", x))
        return x

    assert list(main.stream(3, stream_mode="custom")) == [{"step": "one"}, ("two", 3)]
    assert main.invoke(3) == 3


def test_injected_writer_of_a_task(api):
    def report(x, writer=None):
        writer(f"task saw {x}")
        return x

    async def areport(x, writer):
        writer(f"async task saw {x}")
        return x

    report_task, areport_task = api.task(report), api.task(areport)

    @api.entrypoint()
    def main(x):
        return report_task(x).result()

    @api.entrypoint()
    async def amain(x):
        return await areport_task(x) + await report_task(x + 1)

    assert list(main.stream(3, stream_mode="custom")) == ["task saw 3"]
    assert main.invoke(3) == 3  # a no-op writer under plain invoke
    chunks = asyncio.run(acollect(amain.astream(3, stream_mode=["custom", "updates"])))
    assert chunks == [
        ("custom", "async task saw 3"),
        ("updates", {"areport": 3}),
        ("custom", "task saw 4"),
        ("updates", {"report": 4}),
        ("updates", {"amain": 7}),
    ]
    assert asyncio.run(amain.ainvoke(3)) == 7


def test_a_custom_chunk_reaches_the_caller_while_the_task_runs(api, tmp_path):
    writer_of = api.get_stream_writer

    def waiter(path):
        writer_of()("waiting")
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                return "timed out"
            time.sleep(0.005)
        return "released"

    waiter_task = api.task(waiter)

    @api.entrypoint()
    def main(path):
        return waiter_task(path).result()

    go = tmp_path / "go"
    chunks = []
    for mode, chunk in main.stream(str(go), stream_mode=["custom", "updates"]):
        chunks.append((mode, chunk))
        if chunk == "waiting":
            go.write_text("")
    assert chunks == [
        ("custom", "waiting"),
        ("updates", {"waiter": "released"}),
        ("updates", {"main": "released"}),
    ]


def test_a_custom_chunk_reaches_an_async_caller_while_the_task_runs(api, tmp_path):
    writer_of = api.get_stream_writer

    async def waiter(path):
        writer_of()("waiting")
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                return "timed out"
            await asyncio.sleep(0.005)
        return "released"

    waiter_task = api.task(waiter)

    @api.entrypoint()
    async def main(path):
        return await waiter_task(path)

    go = tmp_path / "go"

    async def scenario():
        chunks = []
        async for chunk in main.astream(str(go), stream_mode="custom"):
            chunks.append(chunk)
            go.write_text("")
        return chunks

    assert asyncio.run(scenario()) == ["waiting"]
    assert go.exists()
    assert asyncio.run(main.ainvoke(str(go))) == "released"


# -- "messages": refused by paralleltask (documented) --------------------------------------


def test_messages_mode(api):
    @api.entrypoint()
    def main(x):
        return x

    attempts = [
        lambda: list(main.stream(1, stream_mode="messages")),
        lambda: main.invoke(1, stream_mode="messages"),
        lambda: asyncio.run(acollect(main.astream(1, stream_mode="messages"))),
        lambda: asyncio.run(main.ainvoke(1, stream_mode="messages")),
    ]
    if api.is_langgraph:  # LangGraph streams no LLM tokens here: nothing
        assert [attempt() for attempt in attempts] == [[], [], [], []]
        assert main.invoke(1, stream_mode=["messages", "updates"]) == [("updates", {"main": 1})]
        return
    for attempt in attempts:
        with pytest.raises(NotImplementedError, match="messages"):
            attempt()
    with pytest.raises(NotImplementedError, match="messages"):
        main.invoke(1, stream_mode=["messages", "updates"])
