"""What a long-lived worker must not accumulate or leak, and the limits that retire one:
known functions evicted on both sides (LRU), ``max_tasks_per_child``,
``max_memory_per_child``, a process forked inside a task, a pool started at a module's
top in a module workers import. docs/faults.md lists the cases.

Pools of their own (``ProcessExecutor(max_workers=..., env=...)``), shut down after, so
nothing here changes the session's default pool.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from paralleltask import ProcessExecutor, entrypoint, task
from tests.support.processes import alive

pytestmark = pytest.mark.timeout(120)


def wait_until(predicate, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: One worker: its books are the pool's, and every call reaches it.
ONE = ProcessExecutor(max_workers=1, env={"PT_TEST_HYGIENE": "one"})


@pytest.fixture(scope="module", autouse=True)
def one_worker_pool():
    ONE.start()
    yield ONE
    ONE.shutdown(wait=False)


# -- tasks (module level: workers import them by reference) ----------------------------


@task
def pid_of(x):
    return x, os.getpid()


@task
def sleepy_pid_of(x):
    time.sleep(0.02)
    return x, os.getpid()


@task
def worker_books(_):
    """How many functions the worker holds (its own book)."""
    from paralleltask import _worker

    return len(_worker.serving.functions)


@task
def worker_rss(_):
    return rss_bytes()


@task
def call_in_worker(fn, *args):
    return fn(*args)


@entrypoint(executor=ONE)
def on_one(args):
    fn, rest = args
    return fn(*rest).result()


@entrypoint(executor=ONE)
async def on_one_async(args):
    fn, rest = args
    return await fn(*rest)


# == known functions: one LRU, both sides ================================================

#: Bytes each per-run task holds in its closure, so that keeping them shows in the RSS.
HELD = 64 * 1024


@entrypoint(executor=ONE)
def per_run(x):
    held = bytes([x % 256]) * HELD

    @task
    def made_in_this_run(y):  # a new function each run, pickled by value
        return len(held) + y

    return made_in_this_run(x).result()


def test_a_task_made_in_every_run_leaves_both_books_bounded():
    """3 000 runs each making its own task: the worker keeps at most FUNCTIONS_KEPT of
    them (256 x 64 kB = 16 MB) instead of all (190 MB), and the parent's book of what the
    worker holds is bounded the same, so the two agree (no call ever fails to load)."""
    rss_at = {}
    for run in range(3000):
        assert per_run.invoke(run) == HELD + run
        if run in (999, 2999):
            rss_at[run] = on_one.invoke((worker_rss, (0,)))
    growth = rss_at[2999] - rss_at[999]
    print(f"\nFIGURE worker RSS growth over runs 1000-3000: {growth / 1e6:.1f} MB")
    assert growth < 40e6, f"the worker's RSS grew by {growth / 1e6:.0f} MB"

    from paralleltask.executors._known import FUNCTIONS_KEPT as kept

    assert kept == 256
    assert on_one.invoke((worker_books, (0,))) <= kept
    pool = ONE._pool()
    with pool._lock:
        (worker,) = pool._workers
        assert len(worker.known_functions) <= kept


def test_an_evicted_function_is_sent_again_when_called_again():
    """The first task made is long evicted by the LRU: calling it again resends it."""
    tasks = []

    @entrypoint(executor=ONE)
    def call(index):
        return tasks[index](index).result()

    for i in range(256 + 20):  # FUNCTIONS_KEPT + 20

        def body(x, i=i):
            return x * 1000 + i

        tasks.append(task(body, name=f"made_{i}"))
        assert call.invoke(i) == i * 1001
    assert on_one.invoke((worker_books, (0,))) <= 256  # the worker forgot some...
    pool = ONE._pool()
    with pool._lock:
        assert len(pool._workers[0].known_functions) <= 256  # ...as the parent's book says
        assert tasks[0].task_id not in pool._workers[0].known_functions
    assert call.invoke(0) == 0  # evicted on both sides: sent again, loaded again
    assert call.invoke(5) == 5005


def test_the_two_books_agree_under_concurrent_runs_evicting_while_calls_are_held():
    """Four threads, 400 tasks called at random in batches (so the LRU evicts while the
    worker holds prefetched calls): every call finds its function, and the parent's book
    stays bounded."""
    import random
    import threading

    def made(i):
        def body(x, i=i):
            return x + i

        return task(body, name=f"shared_{i}")

    tasks = [made(i) for i in range(400)]

    @entrypoint(executor=ONE)
    def batch(picks):
        return [f.result() for f in [tasks[i](1) for i in picks]]

    failures = []

    def runs(seed):
        rng = random.Random(seed)
        for _ in range(100):
            picks = [rng.randrange(len(tasks)) for _ in range(rng.randrange(1, 30))]
            try:
                assert batch.invoke(picks) == [1 + i for i in picks]
            except Exception as error:  # reported below, with the others
                failures.append(repr(error))

    threads = [threading.Thread(target=runs, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    pool = ONE._pool()
    with pool._lock:
        assert len(pool._workers[0].known_functions) <= 256
    assert on_one.invoke((worker_books, (0,))) <= 256


# == max_tasks_per_child / max_memory_per_child =========================================


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_tasks_per_child": 0}, "max_tasks_per_child must be a positive int or None, got 0"),
        ({"max_tasks_per_child": -3}, "got -3"),
        ({"max_tasks_per_child": 2.5}, "max_tasks_per_child must be a positive int or None"),
        ({"max_tasks_per_child": True}, "got True"),
        ({"max_tasks_per_child": "5"}, "got '5'"),
        ({"max_memory_per_child": 0}, "max_memory_per_child must be more than 0 bytes, got 0"),
        ({"max_memory_per_child": "lots"}, "max_memory_per_child must be bytes"),
        ({"max_memory_per_child": "2 zettabytes"}, "got '2 zettabytes'"),
        ({"max_memory_per_child": 1.5}, "got 1.5"),
        ({"max_memory_per_child": False}, "got False"),
        ({"max_memory_per_child": "-1GiB"}, "got '-1GiB'"),
    ],
)
def test_bad_limits_are_refused_naming_the_parameter_and_the_value(kwargs, words):
    with pytest.raises(ValueError) as info:
        ProcessExecutor(max_workers=1, **kwargs)
    assert words in str(info.value)


def test_limits_are_part_of_the_pool_key_and_sizes_are_read_as_dask_does():
    plain = ProcessExecutor(max_workers=2)
    assert ProcessExecutor(max_workers=2, max_tasks_per_child=3)._key != plain._key
    assert ProcessExecutor(max_workers=2, max_memory_per_child="1GiB")._key != plain._key
    same = ProcessExecutor(max_workers=2, max_memory_per_child=2**30)
    assert same._key == ProcessExecutor(max_workers=2, max_memory_per_child="1GiB")._key
    sizes = {"2GiB": 2 * 2**30, "500MB": 500 * 10**6, "1.5 GB": 1.5e9, "64kB": 64000}
    for text, size in sizes.items():
        assert ProcessExecutor(max_memory_per_child=text).max_memory_per_child == size


def every_worker_booted(pool, count):
    with pool._lock:
        serving = [w for w in pool._workers if not w.retiring]
        return len(serving) == count and all(w.booted for w in serving)


def test_max_tasks_per_child_retires_a_worker_after_that_many_calls():
    """Sleepy calls (one at a time) and tiny ones (prefetched in batches): no worker ever
    runs more than its limit, every call returns, and the pool keeps its size."""
    executor = ProcessExecutor(max_workers=2, max_tasks_per_child=4, env={"PT_TEST": "mtpc"})

    @entrypoint(executor=executor)
    def spread(args):
        fn, n = args
        return [f.result() for f in [fn(i) for i in range(n)]]

    try:
        executor.start()
        for fn, n in ((sleepy_pid_of, 12), (pid_of, 40), (pid_of, 40)):
            results = spread.invoke((fn, n))
            assert [x for x, _ in results] == list(range(n))
            counts = {}
            for _, pid in results:
                counts[pid] = counts.get(pid, 0) + 1
            assert max(counts.values()) <= 4, counts
        pool = executor._pool()
        wait_until(lambda: every_worker_booted(pool, 2), what="two fresh workers")
        retired = {pid for pid, count in counts.items() if count == 4}
        assert retired
        wait_until(lambda: not any(alive(pid) for pid in retired), what="retired workers exit")
    finally:
        executor.shutdown(wait=False)


#: What each call of ``hog`` keeps alive in its worker (a global: RSS stays up).
HOARD = []


@task
def hog(megabytes):
    HOARD.append(bytearray(megabytes * 2**20))  # touched: resident
    return os.getpid(), rss_bytes()


def test_max_memory_per_child_retires_the_worker_a_call_pushed_over():
    executor = ProcessExecutor(max_workers=1, max_memory_per_child="100MiB", env={"PT_TEST": "mm"})

    @entrypoint(executor=executor)
    def hogging(megabytes):
        return hog(megabytes).result()

    try:
        executor.start()
        first_pid, _ = hogging.invoke(1)  # well under: kept
        assert hogging.invoke(1)[0] == first_pid
        over_pid, over_rss = hogging.invoke(120)  # its value still comes back
        assert over_pid == first_pid and over_rss > 100 * 2**20
        next_pid, next_rss = hogging.invoke(1)  # on the replacement, which is fresh
        assert next_pid != over_pid and next_rss < 100 * 2**20
        wait_until(lambda: not alive(over_pid), what="the retired worker exits")
        wait_until(lambda: every_worker_booted(executor._pool(), 1), what="a full pool")
    finally:
        executor.shutdown(wait=False)


# == a process forked inside a task ======================================================


@task
def fork_and_return(x):
    pid = os.fork()
    if pid == 0:  # the child returns into paralleltask's code
        return "child", os.getpid()
    return "parent", pid


@task
async def fork_and_return_async(x):
    pid = os.fork()
    if pid == 0:
        await asyncio.sleep(0)
        return "child", os.getpid()
    await asyncio.sleep(0.05)
    return "parent", pid


@task
def fork_and_raise(x):
    pid = os.fork()
    if pid == 0:
        raise ValueError("raised in the child")
    return "parent", pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("fn", [fork_and_return, fork_and_return_async, fork_and_raise])
def test_a_process_forked_in_a_task_exits_when_it_returns_and_the_worker_serves_on(fn):
    worker_pid = on_one.invoke((pid_of, (0,)))[1]
    for attempt in range(3):
        if fn.is_async:
            who, child = asyncio.run(on_one_async.ainvoke((fn, (attempt,))))
        else:
            who, child = on_one.invoke((fn, (attempt,)))
        assert who == "parent"  # the child never answers for the call
        wait_until(lambda child=child: not alive(child), timeout=5, what="the child exits")
    assert on_one.invoke((pid_of, (7,))) == (7, worker_pid)  # the same worker, still serving


# == ProcessExecutor().start() inside a worker ===========================================


@task
def start_and_submit_here(_):
    executor = ProcessExecutor(max_workers=1)
    started = executor.start() is executor  # a no-op in a worker
    try:
        executor._pool()  # what submit uses: it keeps refusing
    except RuntimeError as error:
        return started, str(error)
    return started, "a pool was made in a worker"


def test_start_inside_a_worker_is_a_no_op_and_submit_still_refuses():
    started, refusal = on_one.invoke((start_and_submit_here, (0,)))
    assert started is True
    assert "never starts a process pool inside a worker" in refusal


def test_a_module_workers_import_may_start_its_pool_at_its_top():
    from tests.support import starts_pool_at_import  # here: other tests' workers never import it

    value, pid = on_one.invoke((starts_pool_at_import.where, (3,)))
    assert value == 3 and pid != os.getpid()


def test_an_initializer_from_a_module_that_starts_a_pool_at_import_runs(tmp_path):
    from tests.support import starts_pool_at_import

    executor = ProcessExecutor(
        max_workers=1,
        initializer=starts_pool_at_import.initializer,
        initargs=(str(tmp_path),),
        env={"PT_TEST": "init-import"},
    )
    try:
        executor.start()

        @entrypoint(executor=executor)
        def where(x):
            return starts_pool_at_import.where(x).result()

        value, pid = where.invoke(5)
        assert value == 5 and os.path.exists(tmp_path / f"{pid}.init")
    finally:
        executor.shutdown(wait=False)


if not sys.platform.startswith("linux"):  # rss_bytes and alive read /proc
    pytestmark = [pytestmark, pytest.mark.skip(reason="reads /proc")]
