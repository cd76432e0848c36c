"""LangGraph's own tests of tasks and entrypoints without a checkpointer, ported to run on
``langgraph.func`` and ``paralleltask``: entrypoints without a checkpointer, generators
refused, injected parameters, task names.

Source: langchain-ai/langgraph, ``libs/langgraph/tests/test_pregel.py`` and
``test_pregel_async.py``. Each test keeps LangGraph's name, prefixed ``test_lg_``, with a
comment naming the original; each runs twice, once on LangGraph (which proves the port is
faithful) and once on paralleltask's default process pool (which proves it matches). Each
upstream test is ported once: those with a checkpoint part (most) are in
``tests/checkpoints/test_langgraph_ported.py``, those of streaming as results are produced
in ``tests/streaming/test_langgraph_ported.py``.

Tasks are closures (cloudpickled by value), as in LangGraph's tests; the ``states`` lists
the originals fill are filled by entrypoint bodies, which run in the caller's process on
both implementations. Async tests run under ``asyncio.run`` (no pytest-asyncio here).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from tests.support.impls import Api, make_api
from tests.support.ported import ON_THE_POOL, ported


@pytest.fixture
def api(request) -> Api:
    """The functional API under test, on one implementation."""
    return make_api(request.param)


# -- entrypoints: previous, generators, injected parameters --------------------------------


@ported(impls=ON_THE_POOL)
def test_lg_entrypoint_without_checkpointer(api):
    # Original: test_pregel.py::test_entrypoint_without_checkpointer (the same test is in
    # test_pregel_async.py). Unchanged: the body runs in the caller's process on both.
    states = []
    config = {"configurable": {"thread_id": "1"}}

    # Test without previous
    @api.entrypoint()
    def foo(inputs: Any) -> Any:
        states.append(inputs)
        return inputs

    assert foo.invoke({"a": "1"}, config) == {"a": "1"}

    @api.entrypoint()
    def foo(inputs: Any, *, previous: Any) -> Any:
        states.append(previous)
        return {"previous": previous, "current": inputs}

    assert foo.invoke({"a": "1"}, config) == {"current": {"a": "1"}, "previous": None}
    assert foo.invoke({"a": "1"}, config) == {"current": {"a": "1"}, "previous": None}


@ported(impls=ON_THE_POOL)
def test_lg_async_entrypoint_without_checkpointer(api):
    # Original: test_pregel_async.py::test_async_entrypoint_without_checkpointer. Unchanged
    # but for asyncio.run around each await (no pytest-asyncio here).
    states = []
    config = {"configurable": {"thread_id": "1"}}

    # Test without previous
    @api.entrypoint()
    async def foo(inputs: Any) -> Any:
        states.append(inputs)
        return inputs

    assert asyncio.run(foo.ainvoke({"a": "1"}, config)) == {"a": "1"}

    @api.entrypoint()
    async def foo(inputs: Any, *, previous: Any) -> Any:
        states.append(previous)
        return {"previous": previous, "current": inputs}

    assert asyncio.run(foo.ainvoke({"a": "1"}, config)) == {
        "current": {"a": "1"},
        "previous": None,
    }
    assert asyncio.run(foo.ainvoke({"a": "1"}, config)) == {
        "current": {"a": "1"},
        "previous": None,
    }


@ported(impls=ON_THE_POOL)
def test_lg_entrypoint_from_sync_generator(api):
    # Original: test_pregel.py::test_entrypoint_from_sync_generator. Unchanged.
    previous_return_values = []

    with pytest.raises(NotImplementedError):

        @api.entrypoint()
        def foo(inputs, previous=None) -> Any:
            previous_return_values.append(previous)
            yield "a"
            yield "b"


@ported(impls=ON_THE_POOL)
def test_lg_entrypoint_from_async_generator(api):
    # Original: test_pregel_async.py::test_entrypoint_from_async_generator. Unchanged.
    with pytest.raises(NotImplementedError):

        @api.entrypoint()
        async def foo(inputs) -> Any:
            yield "a"
            yield "b"


@ported(impls=ON_THE_POOL)
def test_lg_overriding_injectable_args_with_tasks(api):
    # Original: test_pregel.py::test_overriding_injectable_args_with_tasks.
    # Dropped: entrypoint(store=sync_store), the body's `store` parameter and its
    # `assert store is not None` (stores are not built in paralleltask; without a store
    # LangGraph does not inject `store` at all). The point, that a task's `store`/`writer`
    # arguments passed explicitly are not replaced by injected ones, is kept.
    @api.task
    def foo(store: Any, writer: Any, value: Any) -> None:
        assert store is value
        assert writer is value

    @api.entrypoint()
    def main(inputs) -> str:  # was: main(inputs, store: BaseStore)
        foo(store=None, writer=None, value=None).result()
        foo(store="hello", writer="hello", value="hello").result()
        return "OK"

    assert main.invoke({}) == "OK"


@ported(impls=ON_THE_POOL)
def test_lg_overriding_injectable_args_with_async_task(api):
    # Original: test_pregel_async.py::test_overriding_injectable_args_with_async_task.
    # Dropped: entrypoint(store=async_store), the body's `store` parameter and its
    # `assert store is not None` (see the sync port).
    @api.task
    async def foo(store: Any, writer: Any, value: Any) -> None:
        assert store is value
        assert writer is value

    @api.entrypoint()
    async def main(inputs) -> str:  # was: main(inputs, store: BaseStore)
        await foo(store=None, writer=None, value=None)
        await foo(store="hello", writer="hello", value="hello")
        return "OK"

    assert asyncio.run(main.ainvoke({})) == "OK"


# -- task naming -------------------------------------------------------------------------


@ported(impls=ON_THE_POOL)
def test_lg_named_tasks_functional(api):
    # Original: test_pregel.py::test_named_tasks_functional. Unchanged.
    class Foo:
        def foo(self, value: str) -> dict:
            return value + "foo"

    f = Foo()

    # class method task
    foo = api.task(f.foo, name="custom_foo")
    other_foo = api.task(f.foo, name="other_foo")

    # regular function task
    @api.task(name="custom_bar")
    def bar(value: str) -> dict:
        return value + "|bar"

    def baz(update: str, value: str) -> dict:
        return value + f"|{update}"

    # partial function task (unnamed)
    baz_task = api.task(functools.partial(baz, "baz"))
    # partial function task (named_)
    custom_baz_task = api.task(functools.partial(baz, "custom_baz"), name="custom_baz")

    class Qux:
        def __call__(self, value: str) -> dict:
            return value + "|qux"

    qux_task = api.task(Qux(), name="qux")

    @api.entrypoint()
    def workflow(inputs: dict) -> dict:
        foo_result = foo(inputs).result()
        other_foo(inputs).result()
        fut_bar = bar(foo_result)
        fut_baz = baz_task(fut_bar.result())
        fut_custom_baz = custom_baz_task(fut_baz.result())
        fut_qux = qux_task(fut_custom_baz.result())
        return fut_qux.result()

    assert list(workflow.stream("", stream_mode="updates")) == [
        {"custom_foo": "foo"},
        {"other_foo": "foo"},
        {"custom_bar": "foo|bar"},
        {"baz": "foo|bar|baz"},
        {"custom_baz": "foo|bar|baz|custom_baz"},
        {"qux": "foo|bar|baz|custom_baz|qux"},
        {"workflow": "foo|bar|baz|custom_baz|qux"},
    ]


@ported(impls=ON_THE_POOL)
def test_lg_named_tasks_functional_async(api):
    # Original: test_pregel_async.py::test_named_tasks_functional. Unchanged.
    class Foo:
        async def foo(self, value: str) -> dict:
            return value + "foo"

    f = Foo()

    # class method task
    foo = api.task(f.foo, name="custom_foo")
    other_foo = api.task(f.foo, name="other_foo")

    # regular function task
    @api.task(name="custom_bar")
    async def bar(value: str) -> dict:
        return value + "|bar"

    async def baz(update: str, value: str) -> dict:
        return value + f"|{update}"

    # partial function task (unnamed)
    baz_task = api.task(functools.partial(baz, "baz"))
    # partial function task (named_)
    custom_baz_task = api.task(functools.partial(baz, "custom_baz"), name="custom_baz")

    class Qux:
        def __call__(self, value: str) -> dict:
            return value + "|qux"

    qux_task = api.task(Qux(), name="qux")

    @api.entrypoint()
    async def workflow(inputs: dict) -> dict:
        foo_result = await foo(inputs)
        await other_foo(inputs)
        bar_result = await bar(foo_result)
        baz_result = await baz_task(bar_result)
        custom_baz_result = await custom_baz_task(baz_result)
        qux_result = await qux_task(custom_baz_result)
        return qux_result

    async def main():
        return [c async for c in workflow.astream("", stream_mode="updates")]

    assert asyncio.run(main()) == [
        {"custom_foo": "foo"},
        {"other_foo": "foo"},
        {"custom_bar": "foo|bar"},
        {"baz": "foo|bar|baz"},
        {"custom_baz": "foo|bar|baz|custom_baz"},
        {"qux": "foo|bar|baz|custom_baz|qux"},
        {"workflow": "foo|bar|baz|custom_baz|qux"},
    ]
