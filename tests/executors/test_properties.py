"""Property tests: a parallel map over tasks equals the serial map, on every executor.

The default process pool is process-wide and started once by ``conftest.warm_pool``,
so hypothesis examples reuse it; the last property checks that they do (all the worker
pids seen come from at most ``ProcessExecutor().max_workers`` processes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import copy
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paralleltask import InlineExecutor, ProcessExecutor, ThreadExecutor, entrypoint, task

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: One long-lived handle each, shared by every example.
THREADS = ThreadExecutor(max_workers=4)
INLINE = InlineExecutor()
EXECUTORS = {"process": None, "thread": THREADS, "inline": INLINE}

# -- values ----------------------------------------------------------------------------

scalars = st.one_of(st.integers(), st.text(max_size=20))
values = st.recursive(
    scalars,
    lambda children: st.tuples(children, children) | st.lists(children, max_size=3).map(tuple),
    max_leaves=8,
)
inputs = st.lists(values, max_size=25)
mutables = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


# -- pure functions and their tasks (module level: workers import them) ----------------


def describe(value):
    """A pure function of ints, strings and nested tuples, sensitive to their order."""
    if isinstance(value, tuple):
        return ("tuple", len(value), tuple(describe(v) for v in value))
    if isinstance(value, int):
        return ("int", value * 3 - 1, value % 7)
    return ("str", value[::-1], len(value))


class Rejected(Exception):
    """Carries the rejected value besides its message."""

    def __init__(self, value, reason):
        super().__init__(value, reason)
        self.value = value
        self.reason = reason


def checked(value):
    """``describe``, except for the inputs it refuses, each with its own exception."""
    if isinstance(value, int) and value % 5 == 0:
        raise ValueError(f"multiple of five: {value}", value)
    if isinstance(value, str) and "a" in value:
        raise Rejected(value, "contains 'a'")
    if isinstance(value, tuple) and len(value) == 1:
        raise KeyError(value)
    return describe(value)


def mutate(obj):
    """Change ``obj`` in place (recursively) and return it."""
    if isinstance(obj, list):
        for item in obj:
            mutate(item)
        obj.append("added")
    elif isinstance(obj, dict):
        for item in obj.values():
            mutate(item)
        obj["added"] = True
    return obj


describe_task = task(describe)
checked_task = task(checked)
mutate_task = task(mutate)


@task
async def adescribe(value):
    await asyncio.sleep(0)
    return describe(value)


@task
def worker_pid(_value):
    return os.getpid()


def outcome(call, *args):
    """``("ok", value)`` or ``("raised", type, args)``: what a call did."""
    try:
        return ("ok", call(*args))
    except Exception as exc:
        return ("raised", type(exc), exc.args)


# -- entrypoints, one per executor -----------------------------------------------------


def _sync_map(xs):
    futures = [describe_task(x) for x in xs]
    return [f.result() for f in futures]


async def _async_map(xs):
    return list(await asyncio.gather(*(adescribe(x) for x in xs)))


def _checked_map(xs):
    futures = [checked_task(x) for x in xs]
    return [outcome(f.result) for f in futures]


def _mutating(obj):
    returned = mutate_task(obj).result()
    return returned, obj


def _entrypoints(body):
    return {
        name: entrypoint(executor=executor)(body) if executor else entrypoint()(body)
        for name, executor in EXECUTORS.items()
    }


SYNC_MAP = _entrypoints(_sync_map)
ASYNC_MAP = _entrypoints(_async_map)
CHECKED_MAP = _entrypoints(_checked_map)
MUTATING = _entrypoints(_mutating)


# -- properties ------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(inputs)
def test_parallel_map_equals_serial_map(xs):
    assert SYNC_MAP["process"].invoke(xs) == [describe(x) for x in xs]


@PROPERTY_SETTINGS
@given(inputs)
def test_async_parallel_map_equals_serial_map(xs):
    assert asyncio.run(ASYNC_MAP["process"].ainvoke(xs)) == [describe(x) for x in xs]


@PROPERTY_SETTINGS
@given(inputs, st.sampled_from(["thread", "inline"]))
def test_parallel_map_equals_serial_map_on_local_executors(xs, executor):
    expected = [describe(x) for x in xs]
    assert SYNC_MAP[executor].invoke(xs) == expected
    assert asyncio.run(ASYNC_MAP[executor].ainvoke(xs)) == expected


@PROPERTY_SETTINGS
@given(inputs, st.sampled_from(sorted(EXECUTORS)))
def test_exceptions_match_a_serial_call(xs, executor):
    serial = [outcome(checked, x) for x in xs]
    assert CHECKED_MAP[executor].invoke(xs) == serial


@PROPERTY_SETTINGS
@given(mutables, st.sampled_from(sorted(EXECUTORS)))
def test_arguments_are_copies(obj, executor):
    before = copy.deepcopy(obj)
    returned, seen_by_body = MUTATING[executor].invoke(obj)
    assert obj == before
    assert seen_by_body == before
    assert returned == mutate(copy.deepcopy(before))


@PROPERTY_SETTINGS
@given(st.lists(inputs, min_size=2, max_size=4))
def test_concurrent_invokes_from_threads_equal_serial_maps(chunks):
    with cf.ThreadPoolExecutor(len(chunks)) as threads:
        results = list(threads.map(SYNC_MAP["process"].invoke, chunks))
    assert results == [[describe(x) for x in chunk] for chunk in chunks]


WORKER_PIDS: set[int] = set()


@PROPERTY_SETTINGS
@given(st.lists(st.integers(), min_size=1, max_size=20))
def test_examples_reuse_one_pool(xs):
    @entrypoint()
    def pids(xs):
        futures = [worker_pid(x) for x in xs]
        return {f.result() for f in futures}

    seen = pids.invoke(xs)
    assert os.getpid() not in seen
    WORKER_PIDS.update(seen)
    assert len(WORKER_PIDS) <= ProcessExecutor().max_workers
