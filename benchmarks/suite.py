"""The workloads of the suite, and the per-round columns each one reports.

A workload's ``measure(peer)`` runs it once on one peer, checks the result against the
serial peer's, and returns named metrics (seconds, µs…). A ``Column`` turns the metrics of
ONE round (every peer's) into one number per peer — usually a ratio between two peers of
that same round — so the report can take the median of the per-round ratios.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from time import perf_counter

from benchmarks import workloads
from benchmarks.ceiling import static_split
from benchmarks.peers import CPU_COUNT, Peer, expected_fresh_process_output

Metrics = dict[str, float]
RoundMetrics = dict[str, Metrics]  # peer name -> metrics of one workload in one round

REPO_ROOT = Path(__file__).resolve().parent.parent


class WrongResult(Exception):
    """A peer computed something other than what the serial peer computed."""


@dataclass(frozen=True)
class Bar:
    """What paralleltask's median must reach on a column: ``median <op> value``."""

    op: str  # "≥" or "≤"
    value: float

    def met_by(self, measured: float) -> bool:
        return measured >= self.value if self.op == "≥" else measured <= self.value


@dataclass(frozen=True)
class Column:
    """One number per peer per round; ``kind`` picks its format ("ratio", "us", "s")."""

    label: str
    kind: str
    compute: Callable[[RoundMetrics, str], float | None]
    headline: str = ""  # the label in the summary table; empty: not in the summary
    bar: Bar | None = None


def absolute(metric: str, label: str, kind: str, headline: str = "", bar=None) -> Column:
    return Column(label, kind, lambda rnd, peer: rnd[peer].get(metric), headline, bar)


def speedup_vs(reference: str, label: str, headline: str = "", bar=None) -> Column:
    """reference's seconds / peer's seconds, in the same round (higher is better)."""

    def compute(rnd: RoundMetrics, peer: str) -> float | None:
        if reference not in rnd or peer not in rnd:
            return None
        return rnd[reference]["seconds"] / rnd[peer]["seconds"]

    return Column(label, "ratio", compute, headline, bar)


def ratio_to(reference: str, metric: str, label: str, headline: str = "") -> Column:
    """peer's value / reference's value, in the same round (lower is better for times)."""

    def compute(rnd: RoundMetrics, peer: str) -> float | None:
        if reference not in rnd or peer not in rnd:
            return None
        return rnd[peer][metric] / rnd[reference][metric]

    return Column(label, "ratio", compute, headline)


def own_ratio(numerator: str, denominator: str, label: str, headline: str = "", bar=None):
    """Two metrics of the same peer in the same round."""

    def compute(rnd: RoundMetrics, peer: str) -> float | None:
        return rnd[peer][numerator] / rnd[peer][denominator]

    return Column(label, "ratio", compute, headline, bar)


def check_equal(result, expected, what: str) -> None:
    if result != expected:
        raise WrongResult(f"{what}: result differs from the serial peer's")


def timed(func: Callable, *args):
    started = perf_counter()
    result = func(*args)
    return perf_counter() - started, result


class Workload:
    key = "?"
    title = "?"
    columns: Sequence[Column] = ()

    def prepare(self, serial: Peer) -> None:
        """Compute the expected result with the serial peer (once per session)."""

    def applies_to(self, peer: Peer) -> bool:
        return True

    def warm(self, peer: Peer) -> None:
        """An unrecorded run before the rounds, for workloads whose first run is unlike
        the others (none by default)."""

    def measure(self, peer: Peer) -> Metrics:
        raise NotImplementedError

    def note(self, medians: dict[str, Metrics]) -> str:
        """A line under the workload's table, from each peer's median metrics."""
        return ""


class BatchSpeedup(Workload):
    """Many calls submitted at once, all collected: wall time, speed-up vs serial.

    With ``ceiling``, each round also times the calls split evenly over bare processes
    (``benchmarks/ceiling.py``), right after the serial peer: the speed-up this machine
    allows at all, reported under the table.
    """

    def __init__(
        self,
        key: str,
        title: str,
        func: Callable,
        calls: list,
        bar: Bar | None = None,
        ceiling: bool = False,
    ):
        self.key, self.title = key, title
        self.func, self.calls = func, calls
        self.ceiling = ceiling
        self.expected = None
        self.columns = (
            speedup_vs("serial", "speed-up vs serial", headline=f"{key} speed-up", bar=bar),
            absolute("seconds", "median wall time", "s"),
        )

    def prepare(self, serial):
        self.expected = serial.run_all(self.func, self.calls)

    def measure(self, peer):
        seconds, results = timed(peer.run_all, self.func, self.calls)
        check_equal(results, self.expected, self.key)
        metrics = {"seconds": seconds}
        if self.ceiling and peer.name == "serial":
            split_seconds, results = static_split(self.func, self.calls, CPU_COUNT)
            check_equal(results, self.expected, f"{self.key} static split")
            metrics["ceiling"] = seconds / split_seconds
        return metrics

    def note(self, medians):
        ceiling = medians.get("serial", {}).get("ceiling")
        if ceiling is None:
            return ""
        share = len(self.calls) // CPU_COUNT
        return (
            f"Machine ceiling: {CPU_COUNT} bare processes, started beforehand and each "
            f"handed {share} of the {len(self.calls)} calls before the clock starts, reach "
            f"{ceiling:.2f}x serial (median over rounds, timed right after serial). A pool "
            "within a few percent of it, either side (it is timed once a round, as noisy "
            "as any peer), loses nothing to its scheduling: the rest is the machine's."
        )


class MapReduceSpeedup(BatchSpeedup):
    """The map step on every peer, then the same ``Counter`` reduce in this process."""

    def __init__(self, key: str, title: str, chunks: list[str]):
        super().__init__(key, title, workloads.count_words_and_bigrams, [(c,) for c in chunks])
        self.columns = (
            *self.columns,
            absolute("reduce_seconds", "of which reduce (parent)", "s"),
        )

    def prepare(self, serial):
        self.expected = workloads.reduce_counts(serial.run_all(self.func, self.calls))

    def note(self, medians):
        serial = medians.get("serial")
        if not serial:
            return ""
        reduce_s, map_s = serial["reduce_seconds"], serial["seconds"] - serial["reduce_seconds"]
        ceiling = serial["seconds"] / (map_s / CPU_COUNT + reduce_s)
        return (
            f"The reduce runs in the parent for every peer ({reduce_s:.2f} s of serial's "
            f"{serial['seconds']:.2f} s): on {CPU_COUNT} cores no peer can beat "
            f"{ceiling:.2f}x (Amdahl, free transfers)."
        )

    def measure(self, peer):
        started = perf_counter()
        partials = peer.run_all(self.func, self.calls)
        map_done = perf_counter()
        totals = workloads.reduce_counts(partials)
        finished = perf_counter()
        check_equal(totals, self.expected, self.key)
        return {"seconds": finished - started, "reduce_seconds": finished - map_done}


class PerCallOverhead(Workload):
    """N identity calls, all submitted then all collected, for two N: µs per call, flatness."""

    key = "W2"

    def __init__(self, counts: tuple[int, int]):
        self.counts = counts
        small, large = (f"us_per_call_{n}" for n in counts)
        self.title = f"{counts[0]} and {counts[1]} identity calls, submit all then collect"
        at_most_100_us = Bar("≤", 100.0)
        self.columns = (
            absolute(
                small, f"µs/call N={counts[0]}", "us", f"W2 µs/call N={counts[0]}", at_most_100_us
            ),
            absolute(
                large, f"µs/call N={counts[1]}", "us", f"W2 µs/call N={counts[1]}", at_most_100_us
            ),
            own_ratio(
                large,
                small,
                f"flatness {counts[1]}/{counts[0]} per call",
                "W2 flatness",
                Bar("≤", 1.25),
            ),
        )

    def measure(self, peer):
        metrics = {}
        for count in self.counts:
            calls = [(i,) for i in range(count)]
            seconds, results = timed(peer.run_all, workloads.identity, calls)
            check_equal(results, list(range(count)), f"{self.key} N={count}")
            metrics[f"us_per_call_{count}"] = seconds / count * 1e6
        return metrics


class RoundTrip(Workload):
    """One identity call at a time on a warm pool: median round trip of the round's calls."""

    key = "W5"

    def __init__(self, calls: int):
        self.calls = [(i,) for i in range(calls)]
        self.title = f"round trip of one call at a time (median of {calls} calls per round)"
        self.columns = (
            absolute("round_trip_us", "median round trip", "us", "W5 round trip µs", Bar("≤", 300)),
            ratio_to("stdlib PPE", "round_trip_us", "÷ stdlib PPE", headline="W5 ÷ PPE"),
            ratio_to("loky", "round_trip_us", "÷ loky"),
        )

    def measure(self, peer):
        results, seconds = peer.round_trips(workloads.identity, self.calls)
        check_equal(results, [call[0] for call in self.calls], self.key)
        return {"round_trip_us": median(seconds) * 1e6}


class InvokeRoundTrip(Workload):
    """W5i: one ``invoke`` of a body running one identity task, per call (entrypoints only)."""

    key = "W5i"

    def __init__(self, calls: int):
        self.calls = [(i,) for i in range(calls)]
        self.title = f"one invoke of a body running one task (median of {calls} invokes)"
        self.columns = (
            absolute("invoke_us", "median invoke", "us", "W5i µs"),
            Column(
                "÷ LangGraph",
                "ratio",
                ratio_to("LangGraph", "invoke_us", "").compute,
                "W5i ÷ LangGraph",
                Bar("≤", 0.5),
            ),
        )

    def applies_to(self, peer):
        return peer.invoke_round_trips(workloads.identity, self.calls[:1]) is not None

    def measure(self, peer):
        results, seconds = peer.invoke_round_trips(workloads.identity, self.calls)
        check_equal(results, [call[0] for call in self.calls], self.key)
        return {"invoke_us": median(seconds) * 1e6}


class StreamingOverhead(Workload):
    """W2s: W2's calls through ``stream(stream_mode="updates")`` against plain ``invoke``,
    in adjacent pairs (streaming must not slow W2 by more than 10 %).

    A round runs pairs for a few seconds (a pair of a slow peer takes a second, one of
    paralleltask's ~70 ms: a fixed count would leave one noisy or the other slow), and
    reports the median of its per-pair ratios, and the pairs alternate their
    order (invoke first, then stream first): a drift of the machine's speed within a
    round, or what the first run of a pair leaves to the second (garbage, cold caches),
    is then not charged to either side. LangGraph's column is this estimator's noise:
    its ``invoke`` runs ``stream`` itself, so its true ratio is 1.
    """

    key = "W2s"

    def __init__(self, count: int, seconds: float = 3.0, pairs: tuple[int, int] = (6, 60)):
        self.calls = [(i,) for i in range(count)]
        self.seconds, (self.fewest, self.most) = seconds, pairs
        self.title = (
            f"{count} identity calls streamed (updates) vs invoked, in pairs for "
            f"{seconds:.0f} s a round ({self.fewest}-{self.most} pairs)"
        )
        self.columns = (
            absolute("ratio", "streamed ÷ invoked", "ratio", "W2s ÷ W2", Bar("≤", 1.10)),
            absolute("streamed_us", "µs/call streamed", "us"),
        )

    def applies_to(self, peer):
        return peer.stream_all(workloads.identity, self.calls[:1]) is not None

    def measure(self, peer):
        expected = [call[0] for call in self.calls]
        ways = {"invoked": peer.run_all, "streamed": peer.stream_all}
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        started = perf_counter()
        for pair in range(self.most):
            if pair >= self.fewest and perf_counter() - started > self.seconds:
                break
            order = ("invoked", "streamed") if pair % 2 == 0 else ("streamed", "invoked")
            for name in order:
                gc.collect()  # each run starts from the same heap, whatever ran before it
                took, results = timed(ways[name], workloads.identity, self.calls)
                check_equal(results, expected, self.key)
                seconds[name].append(took)
        ratios = [s / i for s, i in zip(seconds["streamed"], seconds["invoked"], strict=True)]
        return {
            "pairs": len(ratios),
            "ratio": median(ratios),
            "streamed_us": median(seconds["streamed"]) / len(self.calls) * 1e6,
        }


class DurableOverhead(Workload):
    """W3d: W3's calls with every result checkpointed to LMDB, and through a cold LMDB
    cache (every call a miss whose result is stored), against the plain run, alternated
    within the round (checkpointing every task must cost at most 10 %)."""

    key = "W3d"

    def __init__(self, func: Callable, calls: list, repeats: int = 2):
        self.func, self.calls, self.repeats = func, calls, repeats
        self.title = f"W3 ({len(calls)} calls) checkpointed / cold-cached in LMDB vs plain"
        self.columns = (
            own_ratio(
                "checkpointed", "plain", "checkpointed ÷ plain", "W3d ckpt ÷ W3", Bar("≤", 1.10)
            ),
            own_ratio("cached", "plain", "cold cache ÷ plain", "W3d cache ÷ W3"),
        )

    def applies_to(self, peer):
        return peer.durable_all(self.func, self.calls[:1], "checkpointed") is not None

    def prepare(self, serial):
        self.expected = serial.run_all(self.func, self.calls)

    def measure(self, peer):
        seconds: dict[str, list[float]] = {"plain": [], "checkpointed": [], "cached": []}
        for _ in range(self.repeats):
            for how, times in seconds.items():
                took, results = timed(peer.durable_all, self.func, self.calls, how)
                check_equal(results, self.expected, f"{self.key} {how}")
                times.append(took)
        return {how: median(times) for how, times in seconds.items()}


class CrashRecovery(Workload):
    """W3x: W3's calls with one of them killing its worker, against a clean W3
    (alternated within the round); and the time from losing every worker at once (to
    crashes, to timeouts) to the next call's result."""

    key = "W3x"

    def __init__(self, calls: list, repeats: int = 2):
        self.calls = calls
        self.doomed = len(calls) // 2
        self.repeats = repeats
        self.title = (
            f"W3 ({len(calls)} calls) with one call killing its worker, vs clean; "
            "recovery after losing every worker"
        )
        self.columns = (
            own_ratio("crashed", "clean", "1 crash ÷ clean", "W3x ÷ W3", Bar("≤", 1.2)),
            absolute("crash_recovery_ms", "crash → next result", "ms", "crash recovery ms"),
            absolute("timeout_recovery_ms", "timeout → next result", "ms"),
        )

    def applies_to(self, peer):
        return peer.recovery("crash") is not None

    def prepare(self, serial):
        seeds = [(seed, loops) for seed, loops in self.calls]
        self.clean_expected = serial.run_all(workloads.cpu_burn, seeds)
        self.expected = list(self.clean_expected)
        self.expected[self.doomed] = "WorkerCrashedError"

    def measure(self, peer):
        faulty = [(seed, loops, self.doomed) for seed, loops in self.calls]
        clean = [(seed, loops, -1) for seed, loops in self.calls]
        crashed, regular = [], []
        for _ in range(self.repeats):
            took, results = timed(peer.faulty_all, workloads.cpu_burn_or_die, clean)
            check_equal(results, self.clean_expected, f"{self.key} clean")
            regular.append(took)
            took, results = timed(peer.faulty_all, workloads.cpu_burn_or_die, faulty)
            check_equal(results, self.expected, f"{self.key} crashed")
            crashed.append(took)
        _, crash_recovery = peer.recovery("crash")
        _, timeout_recovery = peer.recovery("timeout")
        return {
            "clean": median(regular),
            "crashed": median(crashed),
            "crash_recovery_ms": crash_recovery * 1e3,
            "timeout_recovery_ms": timeout_recovery * 1e3,
        }


class CacheHits(Workload):
    """W6: calls answered from a warm result cache: µs per hit (LMDB for paralleltask,
    with its authentication tag checked; LangGraph's InMemoryCache; joblib.Memory)."""

    key = "W6"

    def __init__(self, count: int, runs: int = 7):
        self.calls = [(i,) for i in range(count)]
        self.runs = runs  # one run of paralleltask's takes ~7 ms: one VM hiccup doubles it
        self.title = f"{count} cache hits (a warm cache, every call a hit), median of {runs}"
        self.columns = (
            absolute("us_per_hit", "µs per hit", "us", "W6 µs/hit", Bar("≤", 10)),
            ratio_to("LangGraph", "us_per_hit", "÷ LangGraph"),
        )

    def applies_to(self, peer):
        return peer.cache_hits(self.calls[:1]) is not None

    def measure(self, peer):
        peer.cache_hits(self.calls)  # warm: every later call a hit
        runs = []
        for _ in range(self.runs):
            seconds, results = timed(peer.cache_hits, self.calls)
            check_equal(results, [call[0] for call in self.calls], self.key)
            runs.append(seconds)
        return {"us_per_hit": median(runs) / len(self.calls) * 1e6}


class FreshProcess(Workload):
    """A new interpreter imports the library, starts its pool, runs 2 tasks, exits."""

    key = "W7"
    title = "fresh process: import, start the pool, run 2 tasks, exit (whole subprocess)"

    def __init__(self, loops: int, timeout_s: float):
        self.loops, self.timeout_s = loops, timeout_s
        self.expected = expected_fresh_process_output(loops)
        self.columns = (
            absolute("seconds", "median wall time", "s"),
            ratio_to("stdlib PPE", "seconds", "÷ stdlib PPE", headline="W7 ÷ PPE"),
            ratio_to("loky", "seconds", "÷ loky"),
            ratio_to("LangGraph", "seconds", "÷ LangGraph"),
        )

    def applies_to(self, peer):
        return peer.fresh_process_script(self.loops) is not None

    def measure(self, peer):
        script = peer.fresh_process_script(self.loops)
        # If the child hangs, it prints every thread's traceback before the parent gives up.
        watchdog = (
            "import faulthandler\n"
            f"faulthandler.dump_traceback_later({self.timeout_s * 0.9}, exit=True)\n"
        )
        seconds, child = timed(self._run_child, watchdog + script)
        if child.returncode != 0:
            raise RuntimeError(f"exit status {child.returncode}:\n{child.stderr[-4000:]}")
        check_equal(child.stdout.strip(), self.expected, self.key)
        return {"seconds": seconds}

    def _run_child(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
            cwd=REPO_ROOT,
            env=child_environment(),
        )


def child_environment() -> dict[str, str]:
    """This environment, with the repository root importable (``benchmarks.workloads``)."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
