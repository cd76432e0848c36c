"""Streaming across processes: chunks arrive while tasks run; runtime and config in workers."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from paralleltask import (
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
    entrypoint,
    get_config,
    get_runtime,
    get_stream_writer,
    task,
)


@task
def write_then_sleep(label, seconds):
    get_stream_writer()({"label": label, "pid": os.getpid(), "at": time.time()})
    time.sleep(seconds)
    return label


@task
def several_chunks(n):
    writer = get_stream_writer()
    for i in range(n):
        writer(i)
    return n


@task
def what_the_task_sees(_):
    runtime = get_runtime()
    return get_config()["configurable"].get("user"), runtime.context, os.getpid()


@task
def inner(x):
    return x * 10


@task
def outer(x):
    return inner(x).result() + 1


def test_custom_chunk_from_a_worker_arrives_while_the_task_still_runs():
    @entrypoint()
    def main(_):
        return write_then_sleep("slow", 1.0).result()

    arrivals = []
    for mode, chunk in main.stream(0, stream_mode=["custom", "updates"]):
        arrivals.append((mode, chunk, time.time()))
    custom = [a for a in arrivals if a[0] == "custom"]
    finished = [a for a in arrivals if a[0] == "updates" and "write_then_sleep" in a[1]]
    assert len(custom) == 1 and len(finished) == 1
    assert custom[0][1]["pid"] != os.getpid()
    assert finished[0][2] - custom[0][2] >= 0.5  # seen >= 0.5 s before the task ended


def test_custom_chunks_keep_each_tasks_order():
    @entrypoint()
    def main(n):
        return [f.result() for f in [several_chunks(n) for _ in range(3)]]

    chunks = list(main.stream(50, stream_mode="custom"))
    assert sorted(chunks) == sorted(list(range(50)) * 3)
    # Interleaved across tasks, but each task's own chunks in order: every value
    # appears three times and the k-th occurrences form an increasing sequence.
    for k in range(3):
        nth = [c for i, c in enumerate(chunks) if chunks[: i + 1].count(c) == k + 1]
        assert nth == list(range(50))


def test_writer_is_a_no_op_under_invoke():
    @entrypoint()
    def main(n):
        return several_chunks(n).result()

    assert main.invoke(5) == 5


def test_nested_task_updates_stream_from_the_worker():
    @entrypoint()
    def main(x):
        return outer(x).result()

    assert list(main.stream(2)) == [{"inner": 20}, {"outer": 21}, {"main": 21}]


def test_runtime_context_and_config_reach_tasks_in_workers():
    @entrypoint()
    def main(_):
        return what_the_task_sees(0).result()

    user, context, pid = main.invoke(0, {"configurable": {"user": "ada"}}, context={"k": 1})
    assert (user, context) == ("ada", {"k": 1}) and pid != os.getpid()


def test_injected_runtime_in_the_body():
    @entrypoint(context_schema=dict)
    def main(x, runtime):
        runtime.stream_writer("from the body")
        return runtime.context["scale"] * x

    assert main.invoke(3, context={"scale": 2}) == 6
    assert list(main.stream(3, context={"scale": 2}, stream_mode="custom")) == ["from the body"]


def test_astream_of_an_async_body():
    @entrypoint()
    async def main(n):
        return await several_chunks(n)

    async def collect():
        return [chunk async for chunk in main.astream(3, stream_mode=["custom", "values"])]

    assert asyncio.run(collect()) == [
        ("custom", 0),
        ("custom", 1),
        ("custom", 2),
        ("values", 3),
    ]


def test_stream_on_a_thread_executor():
    @entrypoint(executor=ThreadExecutor(2))
    def main(x):
        return outer(x).result()

    assert list(main.stream(1)) == [{"inner": 10}, {"outer": 11}, {"main": 11}]


def test_breaking_out_of_a_stream_stops_the_run():
    @entrypoint()
    def main(_):
        futures = [write_then_sleep(i, 1.0) for i in range(3 * workers)]
        return [f.result() for f in futures]

    workers = ProcessExecutor().max_workers
    started = time.perf_counter()
    for _ in main.stream(0, stream_mode="custom"):
        break
    # 3 x workers calls of 1 s on the pool take >= 3 s; stopping takes far less.
    assert time.perf_counter() - started < 2.5


def test_body_error_ends_the_stream_with_that_error():
    @entrypoint()
    def main(_):
        several_chunks(2).result()
        raise LookupError("after two chunks")

    seen = []
    with pytest.raises(LookupError, match="after two chunks"):
        for chunk in main.stream(0, stream_mode="custom"):
            seen.append(chunk)
    assert seen == [0, 1]


def test_unknown_and_refused_stream_modes():
    @entrypoint()
    def main(x):
        return x

    with pytest.raises(ValueError, match="unknown stream_mode"):
        main.stream(1, stream_mode="bogus")
    with pytest.raises(NotImplementedError, match="messages"):
        main.stream(1, stream_mode="messages")
    with pytest.raises(ValueError, match="version"):
        main.stream(1, version="v3")


def test_a_streamed_body_runs_in_a_kept_thread_not_one_per_run():
    @entrypoint(executor=InlineExecutor())
    def main(_):
        return threading.current_thread()

    (first,) = [chunk["main"] for chunk in main.stream(0)]
    (second,) = [chunk["main"] for chunk in main.stream(0)]
    assert first is second is not threading.current_thread()


def test_streams_at_once_each_get_a_body_thread():
    # The outer body consumes an inner stream: were the inner body queued behind the
    # outer one for a thread, this would never end.
    @entrypoint(executor=InlineExecutor())
    def inner_job(x):
        return threading.get_ident()

    @entrypoint(executor=InlineExecutor())
    def outer_job(x):
        (inner_thread,) = [chunk["inner_job"] for chunk in inner_job.stream(x)]
        return inner_thread, threading.get_ident()

    chunks = list(outer_job.stream(0))
    inner_thread, outer_thread = chunks[-1]["outer_job"]
    assert inner_thread != outer_thread


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_streams_on_threads_of_its_own():
    @entrypoint(executor=InlineExecutor())
    def main(x):
        return x + 1

    assert list(main.stream(1)) == [{"main": 2}]  # the parent has a kept thread now
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its stream ends with the right chunk
        ok = False
        try:
            ok = list(main.stream(2)) == [{"main": 3}]
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's stream hung")
    assert os.waitstatus_to_exitcode(status) == 0
