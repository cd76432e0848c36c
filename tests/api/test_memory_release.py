"""No memory held past its use: a delivered result is referenced by its future alone.

With the cycle collector off, a task's result must be freed as soon as the caller drops
its future: no reference cycle between the future and its call record, and the pickled
result bytes dropped once they were stored (docs/faults.md, "Memory").
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import time
import weakref

import pytest

from paralleltask import (
    CachePolicy,
    InlineExecutor,
    MemoryStore,
    ProcessExecutor,
    ThreadExecutor,
    entrypoint,
    task,
)

EXECUTORS = {
    "process": ProcessExecutor(),
    "thread": ThreadExecutor(max_workers=2),
    "inline": InlineExecutor(),
}


class Blob:
    """A result the test can hold a weak reference to (bytes cannot be)."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)


@task
def make_blob(size: int) -> Blob:
    return Blob(size)


@task
async def make_blob_async(size: int) -> Blob:
    return Blob(size)


def freed(ref: weakref.ref, within: float = 2.0) -> bool:
    """True once ``ref``'s object is freed. The thread that delivered the outcome (the
    pool's dispatcher) may still be returning from ``deliver``, its frame holding the
    value, when the caller resumes: a short wait; with the cycle collector off, an object
    in a reference cycle is never freed, so a cycle still fails the test."""
    deadline = time.monotonic() + within
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    return ref() is None


@pytest.fixture
def no_cycle_collector():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("kind", EXECUTORS)
def test_a_sync_result_is_freed_with_its_future(kind, no_cycle_collector):
    refs: list[weakref.ref] = []

    @entrypoint(executor=EXECUTORS[kind])
    def body(size: int) -> int:
        future = make_blob(size)
        blob = future.result()
        refs.append(weakref.ref(blob))
        return len(blob.data)

    assert body.invoke(1 << 20) == 1 << 20
    assert freed(refs[0]), "the result outlived its future (a reference cycle)"


@pytest.mark.parametrize("kind", EXECUTORS)
def test_an_async_result_is_freed_with_its_future(kind, no_cycle_collector):
    refs: list[weakref.ref] = []

    @entrypoint(executor=EXECUTORS[kind])
    async def body(size: int) -> int:
        blob = await make_blob_async(size)
        refs.append(weakref.ref(blob))
        return len(blob.data)

    assert asyncio.run(body.ainvoke(1 << 20)) == 1 << 20
    assert freed(refs[0])


@pytest.mark.parametrize("kind", ["process", "inline"])
def test_a_checkpointed_and_cached_result_is_freed_too(kind, no_cycle_collector):
    refs: list[weakref.ref] = []
    cached = task(cache_policy=CachePolicy())(make_blob.func)

    @entrypoint(executor=EXECUTORS[kind], checkpointer=MemoryStore(), cache=MemoryStore())
    def body(size: int) -> int:
        blob = cached(size).result()
        refs.append(weakref.ref(blob))
        return len(blob.data)

    config = {"configurable": {"thread_id": f"release-{kind}"}}
    assert body.invoke(4096, config, durability="sync") == 4096
    # MemoryStore keeps its own copies (it pickles what it stores): the caller's is freed.
    assert freed(refs[0])


def test_a_future_cancelled_while_running_does_not_hold_its_call(no_cycle_collector):
    @task
    def slow_blob(size: int) -> Blob:
        import time

        time.sleep(0.05)
        return Blob(size)

    futures: list = []

    @entrypoint(executor=EXECUTORS["thread"])
    def body(size: int) -> int:
        future = slow_blob(size)
        while not future.running():
            pass
        assert future.cancel()
        futures.append(weakref.ref(future))
        return size

    assert body.invoke(1024) == 1024
    assert freed(futures[0]), "the cancelled future is still referenced (a cycle)"


def test_large_results_leave_rss_where_it_was_without_gc(tmp_path):
    """The issue's case: a task returning a large result, five invokes, no collection."""
    script = tmp_path / "large_results.py"
    script.write_text(
        textwrap.dedent(
            """
            import gc, os
            gc.disable()
            from paralleltask import entrypoint, task

            def rss_mib():
                with open("/proc/self/statm") as f:
                    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

            @task
            def big(n):
                return b"x" * n

            @entrypoint()
            def main(n):
                return len(big(n).result())

            main.invoke(1024)  # the pool is warm
            before = rss_mib()
            for _ in range(5):
                assert main.invoke(256 * 2**20) == 256 * 2**20
            print(round(rss_mib() - before))
            """
        )
    )
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("reads RSS from /proc")
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    grown_mib = int(out.stdout.strip().splitlines()[-1])
    # Five 256 MiB results held until collection would be >= 1 GiB; one freed payload
    # may stay mapped in the allocator's free lists.
    assert grown_mib < 400, f"RSS grew {grown_mib} MiB over five 256 MiB results"
