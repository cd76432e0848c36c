"""LangGraph's own tests of streaming as results are produced, ported to run on
``langgraph.func`` and ``paralleltask``: each chunk of a task's update arrives when the
task ends, not after the run.

Source: langchain-ai/langgraph, ``libs/langgraph/tests/test_pregel.py`` and
``test_pregel_async.py``. Each test keeps LangGraph's name, prefixed ``test_lg_``, with a
comment naming the original; each runs twice, once on LangGraph (which proves the port is
faithful) and once on paralleltask's default process pool (which proves it matches).
Tasks are closures (cloudpickled by value), as in LangGraph's tests. Async tests run under
``asyncio.run`` (no pytest-asyncio here).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.impls import Api, make_api
from tests.support.ported import ON_THE_POOL, ported


@pytest.fixture
def api(request) -> Api:
    """The functional API under test, on one implementation."""
    return make_api(request.param)


# -- streaming as results are produced ----------------------------------------------------


@ported(impls=ON_THE_POOL)
def test_lg_sync_streaming_with_functional_api(api):
    # Original: test_pregel.py::test_sync_streaming_with_functional_api. Unchanged.
    time_delay = 0.05

    @api.task()
    def slow() -> dict:
        time.sleep(time_delay)
        return {"tic": time.monotonic()}

    @api.entrypoint()
    def graph(inputs: dict) -> list:
        first = slow().result()
        second = slow().result()
        return [first, second]

    arrival_times = []

    for chunk in graph.stream({}):
        if "slow" not in chunk:  # We'll just look at the updates from `slow`
            continue
        arrival_times.append(time.monotonic())

    assert len(arrival_times) == 2
    delta = arrival_times[1] - arrival_times[0]
    # Allow a small amount of scheduler jitter while still verifying the chunks
    # arrived separately rather than back-to-back after graph completion.
    assert delta > time_delay * 0.8


@ported(impls=ON_THE_POOL)
def test_lg_async_streaming_with_functional_api(api):
    # Original: test_pregel_async.py::test_async_streaming_with_functional_api. Unchanged
    # (the loop time a worker returns is only carried, never compared).
    time_delay = 0.01

    @api.task()
    async def slow() -> dict:
        await asyncio.sleep(time_delay)  # Simulate a delay of 10 ms
        return {"tic": asyncio.get_running_loop().time()}

    @api.entrypoint()
    async def graph(inputs: dict) -> list:
        first = await slow()
        second = await slow()
        return [first, second]

    async def main():
        arrival_times = []

        async for chunk in graph.astream({}):
            if "slow" not in chunk:  # We'll just look at the updates from `slow`
                continue
            arrival_times.append(asyncio.get_running_loop().time())
        return arrival_times

    arrival_times = asyncio.run(main())
    assert len(arrival_times) == 2
    delta = arrival_times[1] - arrival_times[0]
    # Delta cannot be less than 10 ms if it is streaming as results are generated.
    assert delta > time_delay
