"""Benchmark paralleltask against its peers: one command, one markdown table.

    python benchmarks/run.py [--quick] [--rounds N] [--out benchmarks/RESULTS.md]
                             [--peers serial,ppe,loky,joblib,langgraph,paralleltask,
                                      paralleltask+cache,paralleltask+shared,ray]
                             [--only W2s,W5i]

Peers (each pool created once, warmed, and kept for the whole session):

- serial        a plain loop in this process: the reference every result is checked against;
- LangGraph     ``langgraph.func`` ``@task``/``@entrypoint`` (task calls run in threads);
- loky          ``loky.get_reusable_executor()`` fetched once and kept, ``submit`` + ``result``;
- stdlib PPE    ``concurrent.futures.ProcessPoolExecutor``, held once, warm;
- joblib        one ``Parallel(n_jobs=-1)`` on the loky backend, kept open and reused;
- paralleltask  the same ``@task``/``@entrypoint`` program as LangGraph's, on paralleltask's
                process-wide warm process pool (skipped, with the reason, if it won't import);
- paralleltask+cache  the same, every task with a ``CachePolicy()`` and the entrypoint with
                an LMDB ``cache=``, run on a cold cache (W4, W4b only);
- paralleltask+shared  the same program, each array argument placed once per run with
                ``paralleltask.shared`` inside the timed run (W4b only);
- Ray           ``ray.init(num_cpus=<cores>)`` once, ``f.remote(array)`` then ``ray.get``
                (W4, W4b, W4r only; skipped, with the reason, if ``ray`` won't import).

Workloads (task functions in ``benchmarks/workloads.py``: pure Python, deterministic):

- W1   16 calls of ~100 ms pure-Python CPU (loop count calibrated once per session):
       speed-up vs serial. Bar for paralleltask: ≥ 1.9x on 2 cores. The note under its
       table gives the machine's ceiling, measured in the same rounds: the calls split
       evenly over bare processes started beforehand (``benchmarks/ceiling.py``).
- W2   N identity calls, N = 1000 and 5000, all submitted then all collected: µs per call
       (the executor's own per-call cost) and flatness = per-call(5000) / per-call(1000),
       ~1.0 when the cost per call does not grow with the number of calls in flight.
       Bar: ≤ 100 µs per call and flat (≤ 1.25).
- W3   400 calls of ~5 ms CPU: speed-up vs serial (per-call overhead at medium grain).
- W3d  W3 with every result checkpointed in LMDB, and through a cold LMDB cache, ÷ plain W3.
- W3x  W3 with one call killing its worker ÷ clean W3; recovery after losing every worker.
- W5   one identity call at a time on a warm pool: the median round trip of 200 calls
       (per round), and its ratio to the stdlib pool's and loky's. Bar: ≤ 300 µs.
- W5i  one ``invoke`` of an entrypoint whose body runs one task: the median of 200, and
       its ratio to LangGraph's. Bar: ≤ 0.5x LangGraph.
- W2s  W2's 1000 calls through ``stream(stream_mode="updates")`` against ``invoke``, in
       adjacent pairs whose order alternates, for 3 s a round (6-60 pairs): the median of
       the per-pair ratios. Bar: ≤ 1.10x (LangGraph's own invoke runs its stream: its
       ratio shows the estimator's noise).
- W6   1000 hits of a warm cache: µs per hit, the median of 7 runs a round. Bar: ≤ 10 µs.
- W7   a fresh interpreter imports the library, starts its pool, runs 2 tasks and exits:
       wall time of the whole subprocess, and its ratio to the stdlib pool's, loky's and
       LangGraph's (serial: —).
- W4   32 calls, each handed its own 8 MB float64 array, returning its sum: wall time, ÷ Ray
       (bar ≤ 0.5x), ÷ the memcpy floor, cold-cached ÷ plain paralleltask (bar ≤ 1.1x).
- W4b  one 200 MB array handed to 8 calls (call k: ``sum(a[k:])``): wall time, ÷ joblib
       (bar ≤ 0.5x); parent peak RSS ÷ the array (bar ≤ 1.3x).
- W4r  32 calls, each returning an 8 MB array built from a seed: wall time, ÷ Ray (bar ≤ 1x).
       The W4 family's memory (peak RSS of the parent and of its workers) is measured once
       per session, after the rounds, in a fresh process per peer (``large_data.py``).
- Map  word and word-pair (bigram) counts of 64 chunks of 500 kB of seeded random text
       (Zipf over a 4 000-word vocabulary), one task per chunk, ``Counter`` reduce in the
       parent: speed-up vs serial. The note under its table gives the Amdahl ceiling that
       the parent's reduce leaves.

How it measures: each round runs every peer once on every workload, the peer order rotated
by one each round; ratios between peers are computed WITHIN a round (so a slow moment of the
machine hits both sides), then the median over rounds (7 by default) is reported, with
the min-max over rounds beside it. Every peer's result is checked equal to the serial
peer's; a wrong result, an exception or a hang shows as "✗ …" in its cell instead of a
number, with the reason under "Problems". A measurement that takes longer than the
deadline is declared hung: every thread's traceback is printed and the peer is dropped.

How to read the table: speed-up columns are serial / peer (higher is better; 2 cores cap
them at ~2x); "÷ X" columns are peer / X (below 1.00x means faster than X); µs and s
columns are medians of absolute values, secondary to the ratios. "—": not applicable.
``--quick`` shrinks every workload but W2 and runs 3 rounds: a smoke test, not a
measurement. The report also says how much CPU other processes took during the run (and
warns when they took more than a sliver: on 2 cores that ruins speed-ups). Raw per-round
metrics go to ``benchmarks/_out/results.json``. Exit status: 0 when every peer ran every
workload correctly, 1 otherwise. ``--only`` runs the named workloads alone (to study
one; its report is not a full run's).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ``benchmarks.workloads`` must import here and in every worker, whatever its start method.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [sys.path[0], os.environ.get("PYTHONPATH")])
)

from benchmarks import arrays, workloads
from benchmarks.large_data import (
    FULL_LARGE,
    QUICK_LARGE,
    LargeData,
    LargeSizes,
    large_workloads,
    measure_memory_in_child,
)
from benchmarks.machine import ForeignCpuMeter, machine_description
from benchmarks.peers import CPU_COUNT, PEER_FACTORIES, Peer
from benchmarks.report import Failure, Session, render
from benchmarks.suite import (
    REPO_ROOT,
    Bar,
    BatchSpeedup,
    CacheHits,
    CrashRecovery,
    DurableOverhead,
    FreshProcess,
    InvokeRoundTrip,
    MapReduceSpeedup,
    PerCallOverhead,
    RoundTrip,
    StreamingOverhead,
    Workload,
    WrongResult,
)


@dataclass(frozen=True)
class Sizes:
    rounds: int
    w1_calls: int = 16
    w1_seconds: float = 0.100
    w2_counts: tuple[int, int] = (1000, 5000)
    w3_calls: int = 400
    w3_seconds: float = 0.005
    w5_calls: int = 200
    map_chunks: int = 64
    map_chunk_bytes: int = 500_000
    deadline_s: float = 300.0
    large: LargeSizes = FULL_LARGE

    def describe(self) -> str:
        return (
            f"W1 {self.w1_calls}x{self.w1_seconds * 1e3:.0f} ms, W2 N={self.w2_counts}, "
            f"W3 {self.w3_calls}x{self.w3_seconds * 1e3:.0f} ms, W5 {self.w5_calls} calls, "
            f"Map {self.map_chunks}x{self.map_chunk_bytes // 1000} kB, "
            f"{self.large.describe()}, {self.rounds} rounds"
        )


FULL = Sizes(rounds=7)
QUICK = Sizes(
    rounds=3,
    w1_calls=8,
    w1_seconds=0.050,
    w3_calls=100,
    w5_calls=50,
    map_chunks=16,
    map_chunk_bytes=200_000,
    deadline_s=120.0,
    large=QUICK_LARGE,
)
BUSY_MACHINE_CORES = 0.15  # foreign CPU use above which the report carries a warning
W7_LOOPS = 10_000  # ~1 ms per task: W7 measures start-up, not work


class PeerHung(Exception):
    """A measurement overran its deadline."""


class BenchThread:
    """Runs every peer action on ONE long-lived thread, with a deadline.

    One thread, because loky's (and so joblib's) reusable executor is thread-local; a thread
    other than the main one, so that a hung peer cannot hang the harness: after a hang, the
    stuck thread is abandoned and a new one serves the next calls.
    """

    def __init__(self):
        self.abandoned_threads = 0
        self._start_thread()

    def _start_thread(self):
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, args=(self._jobs,), name="bench", daemon=True).start()

    @staticmethod
    def _serve(jobs: queue.Queue):
        while True:
            job, answer = jobs.get()
            try:
                answer.put((True, job()))
            except BaseException as error:  # handed to the caller, who decides
                answer.put((False, error))

    def call(self, job: Callable, deadline_s: float):
        answer: queue.Queue = queue.Queue()
        self._jobs.put((job, answer))
        try:
            ok, value = answer.get(timeout=deadline_s)
        except queue.Empty:
            print(f"\n*** hung for {deadline_s:.0f} s; every thread's stack:", file=sys.stderr)
            faulthandler.dump_traceback(all_threads=True)
            self.abandoned_threads += 1
            self._start_thread()
            raise PeerHung(f"no answer within {deadline_s:.0f} s") from None
        if not ok:
            raise value
        return value


def build_suite(sizes: Sizes, only: set[str] | None = None) -> list[Workload]:
    suite = _all_workloads(sizes)
    if only is None:
        return suite
    unknown = only - {workload.key for workload in suite}
    if unknown:
        known = ",".join(workload.key for workload in suite)
        raise SystemExit(f"--only: no workload {','.join(sorted(unknown))}; known: {known}")
    return [workload for workload in suite if workload.key in only]


def _all_workloads(sizes: Sizes) -> list[Workload]:
    loops_100ms = workloads.calibrate_loops(0.100)
    w1_loops = round(loops_100ms * sizes.w1_seconds / 0.100)
    w3_loops = round(loops_100ms * sizes.w3_seconds / 0.100)
    print(f"calibrated: cpu_burn loops per 100 ms = {loops_100ms}", flush=True)
    chunks = workloads.make_text_chunks(sizes.map_chunks, sizes.map_chunk_bytes)
    return [
        BatchSpeedup(
            "W1",
            f"{sizes.w1_calls} calls x ~{sizes.w1_seconds * 1e3:.0f} ms CPU",
            workloads.cpu_burn,
            [(seed, w1_loops) for seed in range(sizes.w1_calls)],
            bar=Bar("≥", 1.9),
            ceiling=True,
        ),
        PerCallOverhead(sizes.w2_counts),
        BatchSpeedup(
            "W3",
            f"{sizes.w3_calls} calls x ~{sizes.w3_seconds * 1e3:.0f} ms CPU",
            workloads.cpu_burn,
            [(seed, w3_loops) for seed in range(sizes.w3_calls)],
        ),
        DurableOverhead(workloads.cpu_burn, [(seed, w3_loops) for seed in range(sizes.w3_calls)]),
        CrashRecovery([(seed, w3_loops) for seed in range(sizes.w3_calls)]),
        RoundTrip(sizes.w5_calls),
        InvokeRoundTrip(sizes.w5_calls),
        StreamingOverhead(sizes.w2_counts[0]),
        CacheHits(1000),
        FreshProcess(W7_LOOPS, timeout_s=min(120.0, sizes.deadline_s)),
        MapReduceSpeedup(
            "Map",
            f"word + bigram counts of {sizes.map_chunks} chunks x "
            f"{sizes.map_chunk_bytes // 1000} kB, Counter reduce in the parent",
            chunks,
        ),
        *large_workloads(sizes.large),
    ]


def peer_key(name: str) -> str:
    """The short name ``--peers`` takes: serial, ppe, loky, joblib, langgraph, paralleltask."""
    return name.split()[-1].lower()


def start_peers(
    bench: BenchThread, wanted: set[str], deadline_s: float
) -> tuple[list[Peer], dict[str, str]]:
    started, skipped = [], {}
    for name, factory in PEER_FACTORIES:
        if peer_key(name) not in wanted:
            continue
        try:
            peer = bench.call(factory, deadline_s)
            bench.call(peer.start, deadline_s)
            warm_up(bench, peer, deadline_s)
        except Exception as error:
            skipped[name] = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            print(f"skipping {name}: {skipped[name]}", flush=True)
            traceback.print_exception(error, file=sys.stderr)
            continue
        print(f"started {name}", flush=True)
        started.append(peer)
    return started, skipped


def warm_up(bench: BenchThread, peer: Peer, deadline_s: float) -> None:
    """Import the task functions in every worker before anything is timed."""
    tiny_calls = {
        workloads.identity: [(i,) for i in range(4 * CPU_COUNT)],
        workloads.cpu_burn: [(i, 1000) for i in range(4 * CPU_COUNT)],
        workloads.count_words_and_bigrams: [("a b c",)] * (4 * CPU_COUNT),
        arrays.array_sum: [(arrays.make_array(0, 8), 0)] * (4 * CPU_COUNT),
        arrays.make_array: [(seed, 8) for seed in range(4 * CPU_COUNT)],
    }
    for func, calls in tiny_calls.items():
        bench.call(lambda f=func, c=calls: peer.run_all(f, c), deadline_s)


class Rounds:
    """Runs the rounds and keeps what each measurement gave."""

    def __init__(self, bench: BenchThread, peers: list[Peer], suite: list[Workload], sizes: Sizes):
        self.bench, self.peers, self.suite, self.sizes = bench, peers, suite, sizes
        self.history: list[dict[str, dict]] = []
        self.failures: dict[tuple[str, str], Failure] = {}
        self.not_applicable = {
            (w.key, p.name)
            for w in suite
            for p in peers
            if (p.only is not None and w.key not in p.only) or not w.applies_to(p)
        }
        self.hung: set[str] = set()

    def warm(self) -> None:
        """One unrecorded run of the workloads that ask for it (the large-data ones)."""
        for workload in self.suite:
            for peer in self.peers:
                if (workload.key, peer.name) in self.not_applicable:
                    continue
                gc.collect()
                try:
                    self.bench.call(lambda w=workload, p=peer: w.warm(p), self.sizes.deadline_s)
                except Exception as error:  # measured (and reported) in the rounds
                    print(f"warming {peer.name} on {workload.key}: {error!r}", file=sys.stderr)

    def measure_memory(self, quick: bool) -> list[str]:
        """The large-data workloads' memory, in a fresh process per peer: its figures go
        into the first round's metrics; returns a line per figure that could not be had."""
        missing = []
        for workload in self.suite:
            if not isinstance(workload, LargeData):
                continue
            for peer in self.peers:
                if (workload.key, peer.name) in self.not_applicable | set(self.failures):
                    continue
                figures = measure_memory_in_child(workload, peer.name, quick, self.sizes.deadline_s)
                workload.memory[peer.name] = figures
                first_round = self.history[0].get(workload.key, {}) if self.history else {}
                if "error" in figures:
                    missing.append(f"memory of {peer.name} on {workload.key}: {figures['error']}")
                elif peer.name in first_round:
                    first_round[peer.name].update(workload.memory_figures(figures))
                print(f"memory: {workload.key} {peer.name}: {figures}", flush=True)
        return missing

    def run(self) -> None:
        for number in range(self.sizes.rounds):
            started = time.perf_counter()
            shift = number % len(self.peers)
            order = self.peers[shift:] + self.peers[:shift]
            self.history.append({w.key: self._run_workload(w, order) for w in self.suite})
            took = time.perf_counter() - started
            print(f"round {number + 1}/{self.sizes.rounds} done in {took:.0f} s", flush=True)

    def _run_workload(self, workload: Workload, order: list[Peer]) -> dict:
        metrics = {}
        for peer in order:
            if (workload.key, peer.name) in self.not_applicable:
                continue
            if (workload.key, peer.name) in self.failures:
                continue  # it failed in an earlier round: its numbers would mean nothing
            if peer.name in self.hung:
                self.failures[workload.key, peer.name] = Failure("hung", "dropped after a hang")
                continue
            outcome = self._measure(workload, peer)
            if isinstance(outcome, Failure):
                self.failures[workload.key, peer.name] = outcome
            else:
                metrics[peer.name] = outcome
        return metrics

    def _measure(self, workload: Workload, peer: Peer):
        # A full collection pending from the previous peer's garbage would land inside
        # this peer's timing (tens of ms over this harness's heap): collect it first, for
        # every peer alike. The collector stays on while measuring (as in real use).
        gc.collect()
        try:
            return self.bench.call(lambda: workload.measure(peer), self.sizes.deadline_s)
        except PeerHung as error:
            self.hung.add(peer.name)
            return Failure("hung", str(error))
        except WrongResult as error:
            print(f"WRONG RESULT: {peer.name} on {workload.key}: {error}", file=sys.stderr)
            return Failure("wrong result", str(error))
        except Exception as error:
            print(f"ERROR: {peer.name} on {workload.key}:", file=sys.stderr)
            traceback.print_exception(error, file=sys.stderr)
            return Failure("error", "".join(traceback.format_exception_only(error)))


def busy_machine_warning(foreign_cores: float) -> list[str]:
    if foreign_cores < BUSY_MACHINE_CORES:
        return []
    return [
        f"The machine was not ours alone: other processes (or the hypervisor) took "
        f"{foreign_cores:.2f} of its {CPU_COUNT} cores on average. Speed-ups and ratios "
        "between peers are understated and noisy; run again on an idle machine."
    ]


def quick_warning(quick: bool) -> list[str]:
    return (
        ["`--quick`: small sizes and 3 rounds, a smoke test, not a measurement."] if quick else []
    )


def close_peers(bench: BenchThread, peers: list[Peer], hung: set[str]) -> None:
    for peer in peers:
        if peer.name in hung:
            continue
        try:
            bench.call(peer.close, 60)
        except Exception as error:
            print(f"closing {peer.name}: {type(error).__name__}: {error}", file=sys.stderr)
            hung.add(peer.name)


def write_raw(rounds: Rounds, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rounds": rounds.history}, indent=1))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 rounds: smoke test")
    parser.add_argument("--rounds", type=int, help="rounds (default 7; 3 with --quick)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "RESULTS.md")
    all_keys = [peer_key(name) for name, _ in PEER_FACTORIES]
    parser.add_argument(
        "--peers",
        default=",".join(all_keys),
        help=f"comma-separated subset of {','.join(all_keys)} (serial always runs)",
    )
    parser.add_argument("--only", help="comma-separated workload keys (W1,W2s…): these alone")
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    sizes = QUICK if arguments.quick else FULL
    if arguments.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": arguments.rounds})
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    machine = machine_description(command.strip())
    foreign_cpu = ForeignCpuMeter()
    bench = BenchThread()
    only = set(arguments.only.split(",")) if arguments.only else None
    suite = bench.call(lambda: build_suite(sizes, only), sizes.deadline_s)
    wanted = {"serial", *arguments.peers.split(",")}
    peers, skipped = start_peers(bench, wanted, sizes.deadline_s)
    for workload in suite:
        workload.prepare(peers[0])  # the serial peer: the expected results
    rounds = Rounds(bench, peers, suite, sizes)
    rounds.warm()
    rounds.run()
    close_peers(bench, peers, rounds.hung)
    memory_missing = rounds.measure_memory(arguments.quick)
    foreign_text, foreign_cores = foreign_cpu.describe()
    machine |= {
        "load average (1 min) at end": f"{os.getloadavg()[0]:.2f}",
        "during the run": foreign_text,
    }
    session = Session(
        peers=[name for name, _ in PEER_FACTORIES if peer_key(name) in wanted],
        suite=suite,
        history=rounds.history,
        failures=rounds.failures,
        skipped=skipped,
        not_applicable=rounds.not_applicable,
        machine=machine,
        warnings=busy_machine_warning(foreign_cores)
        + quick_warning(arguments.quick)
        + memory_missing,
        sizes=sizes.describe(),
    )
    markdown = render(session)
    print("\n" + markdown)
    arguments.out.write_text(markdown)
    write_raw(rounds, REPO_ROOT / "benchmarks" / "_out" / "results.json")
    print(f"written to {arguments.out}", flush=True)
    if bench.abandoned_threads:  # a hung peer's threads or pool may never let Python exit
        sys.stdout.flush()
        os._exit(1)
    return 1 if rounds.failures or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
