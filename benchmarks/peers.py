"""The peers: one small adapter per way of running the same task calls.

Every peer answers the same three questions:

- ``run_all(func, calls)``: submit every call, then collect every result (in call order);
- ``round_trips(func, calls)``: one call at a time, each waited for before the next;
  returns the results and the seconds each call took;
- ``fresh_process_script(loops)``: Python source that imports the library, starts its pool
  and runs two ``cpu_burn`` tasks, printing their results (``None``: not applicable).

Pools are created once, warmed, and kept for the whole session.
"""

from __future__ import annotations

import itertools
import os
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from time import perf_counter
from typing import Any

from benchmarks import arrays, workloads

Call = tuple  # the positional arguments of one task call
CPU_COUNT = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

TASK_FUNCTIONS: tuple[Callable, ...] = (
    workloads.identity,
    workloads.cpu_burn,
    workloads.count_words_and_bigrams,
    arrays.array_sum,
    arrays.make_array,
    arrays.worker_pid,
)


def expected_fresh_process_output(loops: int) -> str:
    """What every peer's fresh-process script must print."""
    return str([workloads.cpu_burn(1, loops), workloads.cpu_burn(2, loops)])


def _script(source: str, loops: int) -> str:
    preamble = "from benchmarks.workloads import cpu_burn\n"
    return preamble + textwrap.dedent(source).format(loops=loops)


class Peer:
    """Base class: the serial peer's behaviour is the reference for every other one."""

    name = "?"
    only: frozenset[str] | None = None  # the keys of the workloads it runs; None: every one

    def start(self) -> None:
        """Create and warm the pool (blocks until its workers answer)."""

    def run_all(self, func: Callable, calls: Sequence[Call]) -> list:
        raise NotImplementedError

    def round_trips(self, func: Callable, calls: Sequence[Call]) -> tuple[list, list[float]]:
        results, seconds = [], []
        for call in calls:
            started = perf_counter()
            results.append(self.run_one(func, call))
            seconds.append(perf_counter() - started)
        return results, seconds

    def run_one(self, func: Callable, call: Call) -> Any:
        raise NotImplementedError

    def fresh_process_script(self, loops: int) -> str | None:
        return None

    def invoke_round_trips(self, func: Callable, calls: Sequence[Call]):
        """One ``invoke`` of a body running one task, per call: ``(results, seconds)``;
        None for peers without entrypoints."""
        return None

    def stream_all(self, func: Callable, calls: Sequence[Call]) -> list | None:
        """``run_all`` through ``stream(stream_mode="updates")``; None without streaming."""
        return None

    def durable_all(self, func: Callable, calls: Sequence[Call], how: str) -> list | None:
        """``run_all`` with every result checkpointed (``how="checkpointed"``) or put in a
        cold cache (``"cached"``), or plainly (``"plain"``); None: not offered."""
        return None

    def faulty_all(self, func: Callable, calls: Sequence[Call]) -> list | None:
        """``run_all`` where some calls kill their worker: results, and the error type
        name for the failed calls; None: this peer cannot survive a crash."""
        return None

    def recovery(self, how: str) -> tuple[float, float] | None:
        """Every worker is lost at once (``how``: "crash" or "timeout"): seconds until
        the last error is seen, then until the next call's result."""
        return None

    def cache_hits(self, calls: Sequence[Call]) -> list | None:
        """``identity`` over ``calls`` through the peer's result cache, warmed first:
        every call a hit. None for peers without a cache."""
        return None

    def close(self) -> None:
        """Shut the pool down."""


class SerialPeer(Peer):
    """A plain loop in this process."""

    name = "serial"

    def run_all(self, func, calls):
        return [func(*call) for call in calls]

    def run_one(self, func, call):
        return func(*call)


class _ExecutorPeer(Peer):
    """A ``concurrent.futures``-style executor, held once: ``submit`` then ``result``."""

    executor: Any = None

    def start(self):
        self.executor = self._make_executor()
        self.run_all(workloads.identity, [(i,) for i in range(4 * CPU_COUNT)])

    def _make_executor(self):
        raise NotImplementedError

    def run_all(self, func, calls):
        futures = [self.executor.submit(func, *call) for call in calls]
        return [future.result() for future in futures]

    def run_one(self, func, call):
        return self.executor.submit(func, *call).result()

    def close(self):
        if self.executor is not None:
            self.executor.shutdown(wait=True)


class StdlibProcessPoolPeer(_ExecutorPeer):
    """``concurrent.futures.ProcessPoolExecutor`` with the platform's default start method."""

    name = "stdlib PPE"

    def _make_executor(self):
        return ProcessPoolExecutor(max_workers=CPU_COUNT)

    def fresh_process_script(self, loops):
        source = """
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor() as executor:
            futures = [executor.submit(cpu_burn, seed, {loops}) for seed in (1, 2)]
            print([future.result() for future in futures])
        """
        return _script(source, loops)


class LokyPeer(_ExecutorPeer):
    """``loky.get_reusable_executor()``, fetched once from one thread and kept (no idle timeout)."""

    name = "loky"

    def _make_executor(self):
        from loky import get_reusable_executor

        return get_reusable_executor(max_workers=CPU_COUNT, timeout=None)

    def fresh_process_script(self, loops):
        source = """
        from loky import get_reusable_executor
        executor = get_reusable_executor()
        futures = [executor.submit(cpu_burn, seed, {loops}) for seed in (1, 2)]
        print([future.result() for future in futures])
        """
        return _script(source, loops)


class JoblibPeer(Peer):
    """``joblib.Parallel(n_jobs=-1)`` on its loky backend, one ``Parallel`` kept open (reused).
    Its cache peer is ``joblib.Memory`` on a temporary folder."""

    name = "joblib"

    def __init__(self):
        self._parallel = None
        self._cached_identity = None

    def cache_hits(self, calls):
        if self._cached_identity is None:
            import tempfile

            import joblib

            memory = joblib.Memory(tempfile.mkdtemp(prefix="bench-joblib-"), verbose=0)
            self._cached_identity = memory.cache(workloads.identity)
            [self._cached_identity(*call) for call in calls]
        return [self._cached_identity(*call) for call in calls]

    def start(self):
        from joblib import Parallel

        self._parallel = Parallel(n_jobs=-1, backend="loky")
        self._parallel.__enter__()
        self.run_all(workloads.identity, [(i,) for i in range(4 * CPU_COUNT)])

    def run_all(self, func, calls):
        from joblib import delayed

        return self._parallel(delayed(func)(*call) for call in calls)

    def run_one(self, func, call):
        return self.run_all(func, [call])[0]

    def fresh_process_script(self, loops):
        source = """
        from joblib import Parallel, delayed
        print(Parallel(n_jobs=-1)(delayed(cpu_burn)(seed, {loops}) for seed in (1, 2)))
        """
        return _script(source, loops)

    def close(self):
        if self._parallel is not None:
            self._parallel.__exit__(None, None, None)


class FunctionalApiPeer(Peer):
    """``@task`` / ``@entrypoint`` (LangGraph's functional API, or a library mirroring it).

    Two entrypoints are built once: one submits every call then collects every future, the
    other times each task call (call → ``.result()``) inside the entrypoint body.
    ``pool_class`` names the API's executor class whose ``start()`` warms its pool, if any.
    """

    def __init__(
        self,
        name: str,
        api: Any,
        pool_class: str | None = None,
        make_cache=None,
        cache_policy=None,
        make_checkpointer=None,
    ):
        self.name = name
        self._api = api
        self._pool_class = pool_class
        tasks = {func.__name__: api.task(func) for func in TASK_FUNCTIONS}
        self._cached_job = None
        self._durable_jobs: dict[str, Any] = {}
        self._threads = itertools.count()
        if make_cache is not None:
            cached_identity = api.task(cache_policy=cache_policy())(workloads.identity)

            @api.entrypoint(cache=make_cache())
            def cached_job(calls):
                return [future.result() for future in [cached_identity(*c) for c in calls]]

            self._cached_job = cached_job
            cached_tasks = {
                func.__name__: api.task(cache_policy=cache_policy())(func)
                for func in TASK_FUNCTIONS
            }

            @api.entrypoint(cache=make_cache())
            def cold_cache_job(job):
                func_name, calls = job
                futures = [cached_tasks[func_name](*call) for call in calls]
                return [future.result() for future in futures]

            self._durable_jobs["cached"] = cold_cache_job
        self._faulty_job = self._recovery_job = None
        if hasattr(api, "WorkerCrashedError"):
            self._build_fault_jobs(api, tasks)
        if make_checkpointer is not None:

            @api.entrypoint(checkpointer=make_checkpointer())
            def checkpointed_job(job):
                func_name, calls = job
                futures = [tasks[func_name](*call) for call in calls]
                return [future.result() for future in futures]

            self._durable_jobs["checkpointed"] = checkpointed_job

        @api.entrypoint()
        def submit_all_then_collect(job):
            func_name, calls = job
            futures = [tasks[func_name](*call) for call in calls]
            return [future.result() for future in futures]

        @api.entrypoint()
        def one_call_at_a_time(job):
            func_name, calls = job
            results, seconds = [], []
            for call in calls:
                started = perf_counter()
                results.append(tasks[func_name](*call).result())
                seconds.append(perf_counter() - started)
            return results, seconds

        @api.entrypoint()
        def one_task(job):
            func_name, call = job
            return tasks[func_name](*call).result()

        self._submit_all = submit_all_then_collect
        self._one_at_a_time = one_call_at_a_time
        self._one_task = one_task

    def _build_fault_jobs(self, api, tasks):
        burn_or_die = api.task(workloads.cpu_burn_or_die)
        die = api.task(workloads.die)
        spin = api.task(timeout=0.05)(workloads.spin)
        identity = tasks["identity"]
        workers = CPU_COUNT

        @api.entrypoint()
        def faulty_job(calls):
            results = []
            for future in [burn_or_die(*call) for call in calls]:
                try:
                    results.append(future.result())
                except api.TaskError as error:
                    results.append(type(error).__name__)
            return results

        @api.entrypoint()
        def recovery_job(how):
            started = perf_counter()
            doomed = [(die if how == "crash" else spin)() for _ in range(workers)]
            for future in doomed:
                try:
                    future.result()
                except api.TaskError:
                    pass
            failed = perf_counter()
            identity(0).result()
            return failed - started, perf_counter() - failed

        self._faulty_job, self._recovery_job = faulty_job, recovery_job

    def faulty_all(self, func, calls):
        if self._faulty_job is None:
            return None
        return self._faulty_job.invoke(list(calls))

    def recovery(self, how):
        if self._recovery_job is None:
            return None
        return self._recovery_job.invoke(how)

    def start(self):
        if self._pool_class:
            getattr(self._api, self._pool_class)().start()
        self.run_all(workloads.identity, [(i,) for i in range(4 * CPU_COUNT)])

    def run_all(self, func, calls):
        return self._submit_all.invoke((func.__name__, list(calls)))

    def round_trips(self, func, calls):
        return self._one_at_a_time.invoke((func.__name__, list(calls)))

    def invoke_round_trips(self, func, calls):
        results, seconds = [], []
        for call in calls:
            started = perf_counter()
            results.append(self._one_task.invoke((func.__name__, call)))
            seconds.append(perf_counter() - started)
        return results, seconds

    def stream_all(self, func, calls):
        chunks = list(self._submit_all.stream((func.__name__, list(calls))))
        return chunks[-1]["submit_all_then_collect"]  # the entrypoint's own update

    def cache_hits(self, calls):
        if self._cached_job is None:
            return None
        return self._cached_job.invoke(list(calls))

    def durable_all(self, func, calls, how):
        if how == "plain":
            return self.run_all(func, calls) if self._durable_jobs else None
        job = self._durable_jobs.get(how)
        if job is None:
            return None
        if how == "cached":  # cold: every call a miss whose result is put
            job.cache.cache_clear()
            return job.invoke((func.__name__, list(calls)))
        config = {"configurable": {"thread_id": f"bench-{next(self._threads)}"}}
        return job.invoke((func.__name__, list(calls)), config)

    def fresh_process_script(self, loops):
        pool_start = f"api.{self._pool_class}().start()" if self._pool_class else ""
        source = f"""
        import {self._api.__name__} as api
        {pool_start}
        burn = api.task(cpu_burn)

        @api.entrypoint()
        def main(seeds):
            return [future.result() for future in [burn(seed, {{loops}}) for seed in seeds]]

        print(main.invoke([1, 2]))
        """
        return _script(source, loops)


def langgraph_peer() -> Peer:
    """LangGraph's own functional API: task calls run in threads of this process."""
    import langgraph.func
    from langgraph.cache.memory import InMemoryCache
    from langgraph.types import CachePolicy

    return FunctionalApiPeer(
        "LangGraph", langgraph.func, make_cache=InMemoryCache, cache_policy=CachePolicy
    )


def paralleltask_peer() -> Peer:
    """paralleltask: the same API, task calls on its process-wide warm process pool."""
    import tempfile

    import paralleltask

    def lmdb_store():
        return paralleltask.LMDBStore(tempfile.mkdtemp(prefix="bench-lmdb-"))

    return FunctionalApiPeer(
        "paralleltask",
        paralleltask,
        pool_class="ProcessExecutor",
        make_cache=lmdb_store,
        cache_policy=paralleltask.CachePolicy,
        make_checkpointer=lmdb_store,
    )


class RayPeer(Peer):
    """Ray, started once for the session (``ray.init(num_cpus=...)``, its own local
    instance), ``f.remote(*args)`` then ``ray.get``: large arguments go to its object
    store, as a user's would (nothing is ``ray.put`` up front). Large-data workloads only."""

    name = "Ray"
    only = frozenset({"W4", "W4b", "W4r"})

    def __init__(self):
        import ray

        self._ray = ray
        self._remote: dict[Callable, Any] = {}

    def start(self):
        self._ray.init(
            address="local",
            num_cpus=CPU_COUNT,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        self.run_all(workloads.identity, [(i,) for i in range(4 * CPU_COUNT)])

    def run_all(self, func, calls):
        remote = self._remote.get(func)
        if remote is None:
            remote = self._remote[func] = self._ray.remote(func)
        return self._ray.get([remote.remote(*call) for call in calls])

    def run_one(self, func, call):
        return self.run_all(func, [call])[0]

    def close(self):
        self._ray.shutdown()


class CachedPeer(Peer):
    """paralleltask with a cache: every task a ``CachePolicy()`` one (the default key:
    the arguments' bytes, hashed), the entrypoint's ``cache=`` an LMDB store. ``run_all``
    on a cold cache is every call a miss (keys computed, results stored); ``clear_cache``
    empties it. Large-data workloads with small results only."""

    name = "paralleltask+cache"
    only = frozenset({"W4", "W4b"})

    def __init__(self):
        self._inner: Any = paralleltask_peer()
        self._job = self._inner._durable_jobs["cached"]

    def start(self):
        self._inner.start()

    def clear_cache(self):
        self._job.cache.cache_clear()

    def run_all(self, func, calls):
        return self._job.invoke((func.__name__, list(calls)))

    def run_one(self, func, call):
        return self.run_all(func, [call])[0]


class SharedPeer(Peer):
    """paralleltask with each distinct array argument placed once per run with
    ``paralleltask.shared`` (inside the timed run: the placement, one copy, counts), then
    the plain job: every call handed that array sends a reference. W4b only (one array,
    many calls: what ``shared`` is for)."""

    name = "paralleltask+shared"
    only = frozenset({"W4b"})

    def __init__(self):
        import paralleltask

        self._shared = paralleltask.shared
        self._inner: Any = paralleltask_peer()

    def start(self):
        self._inner.start()

    def run_all(self, func, calls):
        placed: dict[int, Any] = {}  # id -> shared copy: the same array placed once

        def place(value):
            if type(value).__name__ != "ndarray":
                return value
            if id(value) not in placed:
                placed[id(value)] = self._shared(value)
            return placed[id(value)]

        return self._inner.run_all(func, [tuple(place(v) for v in call) for call in calls])

    def run_one(self, func, call):
        return self.run_all(func, [call])[0]


PEER_FACTORIES: tuple[tuple[str, Callable[[], Peer]], ...] = (
    ("serial", SerialPeer),
    # The stdlib pool forks: create it first, while this process has the fewest threads.
    ("stdlib PPE", StdlibProcessPoolPeer),
    ("loky", LokyPeer),
    ("joblib", JoblibPeer),
    ("LangGraph", langgraph_peer),
    ("paralleltask", paralleltask_peer),
    ("paralleltask+cache", CachedPeer),
    ("paralleltask+shared", SharedPeer),
    ("Ray", RayPeer),
)
