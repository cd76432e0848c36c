"""The large-data workloads (W4, W4b, W4r): numpy arrays in, arrays out.

- W4   ``calls`` calls, each handed its own array of ``mb`` MB; each returns its sum.
- W4b  one array of ``mb`` MB handed to ``calls`` calls; call ``k`` returns ``sum(a[k:])``.
- W4r  ``calls`` calls, each returning an array of ``mb`` MB built from a small seed.

Per round: the wall time of the batch (every call submitted, every result in hand), its
ratio to Ray's (W4, W4r) or joblib's (W4b) in the same round, and its ratio to the floor:
one ``memcpy`` per payload (``np.copyto`` into a destination allocated and touched
beforehand), timed right after the serial peer, in the same round.

Memory is measured apart, once per session, in a fresh process per peer and workload
(``python -m benchmarks.large_data PEER WORKLOAD``): the peer is started and warmed, the
inputs are built, then the parent's RSS is read, its peak reset (``/proc/self/clear_refs``
``5``), the workload runs once, and the parent's peak (``VmHWM``) and its workers' peaks
are read. A fresh process, because shared memory that a peer leaves mapped (Ray's object
store: its pages stay in the driver's RSS after the objects are freed) would sit in the
baseline of a warm harness and hide the next run's use of it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks import arrays
from benchmarks.peers import CPU_COUNT, Peer
from benchmarks.suite import (
    REPO_ROOT,
    Bar,
    Column,
    RoundMetrics,
    Workload,
    WrongResult,
    absolute,
    child_environment,
    timed,
)

MEMORY_MARK = "MEMORY "  # the child's result line on stdout


@dataclass(frozen=True)
class LargeSizes:
    """(calls, MB per array) of each workload."""

    w4: tuple[int, int] = (32, 8)
    w4b: tuple[int, int] = (8, 200)
    w4r: tuple[int, int] = (32, 8)

    def describe(self) -> str:
        return (
            f"W4 {self.w4[0]}x{self.w4[1]} MB, W4b {self.w4b[0]} calls on {self.w4b[1]} MB, "
            f"W4r {self.w4r[0]}x{self.w4r[1]} MB"
        )


FULL_LARGE = LargeSizes()
QUICK_LARGE = LargeSizes(w4=(8, 8), w4b=(4, 50), w4r=(8, 8))


def vm_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and RssShmem of a process, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    fields = {}
    for name in ("VmRSS", "VmHWM", "RssShmem"):
        found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
        fields[name] = int(found.group(1)) * 1024 if found else 0
    return fields


def reset_peak(pid: int | str = "self") -> None:
    """Linux: the peak RSS (VmHWM) starts again from the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc), so that RSS is in use."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _ratio_to_round_peer(
    reference: str, label: str, headline: str = "", bar: Bar | None = None
) -> Column:
    def compute(rnd: RoundMetrics, peer: str) -> float | None:
        if reference not in rnd or peer not in rnd:
            return None
        return rnd[peer]["seconds"] / rnd[reference]["seconds"]

    return Column(label, "ratio", compute, headline, bar)


def _ratio_to_floor(rnd: RoundMetrics, peer: str) -> float | None:
    floor = rnd.get("serial", {}).get("floor")
    return None if floor is None else rnd[peer]["seconds"] / floor


def _cached_over_plain(rnd: RoundMetrics, peer: str) -> float | None:
    """On paralleltask's row: the cold-cached peer's time / the plain one's, this round."""
    if peer != "paralleltask" or "paralleltask+cache" not in rnd:
        return None
    return rnd["paralleltask+cache"]["seconds"] / rnd["paralleltask"]["seconds"]


def _shared_over_joblib(rnd: RoundMetrics, peer: str) -> float | None:
    """On paralleltask's row: the time with ``shared()`` / joblib's, this round."""
    if peer != "paralleltask" or "paralleltask+shared" not in rnd or "joblib" not in rnd:
        return None
    return rnd["paralleltask+shared"]["seconds"] / rnd["joblib"]["seconds"]


def _memory(metric: str, label: str, kind: str, headline: str = "", bar=None) -> Column:
    return absolute(metric, label, kind, headline, bar)


class LargeData(Workload):
    """One large-data workload: its inputs, its per-round columns, its memory figures."""

    def __init__(self, key: str, calls: int, mb: int, reference: str, bar: float):
        self.key, self.count, self.mb, self.reference = key, calls, mb, reference
        self.calls: list[tuple] = []
        self.expected: list = []
        self.floor_payloads: str = ""
        what = {
            "W4": f"{calls} calls, each handed its own {mb} MB float64 array, returning its sum",
            "W4b": f"one {mb} MB float64 array handed to {calls} calls, each a sum over it",
            "W4r": f"{calls} calls, each returning a {mb} MB float64 array built from a seed",
        }
        self.title = what[key]
        columns = [
            absolute("seconds", "median wall time", "s"),
            _ratio_to_round_peer(
                reference, f"÷ {reference}", f"{key} ÷ {reference}", Bar("≤", bar)
            ),
            Column("÷ memcpy floor", "ratio", _ratio_to_floor),
        ]
        if key == "W4":
            columns += [
                Column(
                    "cold cache ÷ plain",
                    "ratio",
                    _cached_over_plain,
                    "W4 cache ÷ W4",
                    Bar("≤", 1.10),
                ),
                absolute("warm_seconds", "warm cache (all hits)", "s"),
            ]
        columns += [
            _memory("parent_extra_mb", "parent peak above start", "MB", f"{key} parent +MB"),
            _memory("worker_peak_mb", "largest worker peak", "MB"),
        ]
        if key == "W4b":
            columns.append(
                Column(
                    "with shared() ÷ joblib",
                    "ratio",
                    _shared_over_joblib,
                    "W4b shared() ÷ joblib",
                    Bar("≤", bar),
                )
            )
            columns.append(
                _memory(
                    "parent_peak_ratio",
                    "(array + parent peak above start) ÷ array",
                    "ratio",
                    "W4b parent peak ÷ array",
                    Bar("≤", 1.3),
                )
            )
        self.columns = tuple(columns)
        self.memory: dict[str, dict] = {}  # peer name -> the fresh process's figures

    # -- inputs and the reference result ------------------------------------------------

    def build_inputs(self) -> None:
        nbytes = self.mb * arrays.MB
        if self.key == "W4":
            self.calls = [(array, 0) for array in arrays.random_arrays(self.count, nbytes)]
        elif self.key == "W4b":
            (array,) = arrays.random_arrays(1, nbytes)
            self.calls = [(array, start) for start in range(self.count)]
        else:
            self.calls = [(seed, nbytes // arrays.FLOAT64) for seed in range(self.count)]

    @property
    def func(self):
        return arrays.make_array if self.key == "W4r" else arrays.array_sum

    def input_bytes(self) -> int:
        """What the parent holds before the run: the arrays handed to the calls."""
        return (
            0
            if self.key == "W4r"
            else self.mb * arrays.MB * (self.count if self.key == "W4" else 1)
        )

    def _checked(self, results) -> list:
        return [arrays.digest(r) for r in results] if self.key == "W4r" else list(results)

    def prepare(self, serial: Peer) -> None:
        self.build_inputs()
        self.expected = self._checked(serial.run_all(self.func, self.calls))

    def check(self, results) -> None:
        if self._checked(results) != self.expected:
            raise WrongResult(f"{self.key}: result differs from the serial peer's")

    # -- one round ------------------------------------------------------------------------

    def fresh_calls(self) -> list[tuple]:
        """The calls with new copies of the arrays (W4b: one copy, shared by the calls): a
        peer that remembers an array it has seen (joblib memmaps each array object once
        and reuses the file) meets a new one every run, as with a user's new data."""
        if self.key == "W4r":
            return self.calls
        if self.key == "W4b":
            array = self.calls[0][0].copy()
            return [(array, start) for _, start in self.calls]
        return [(array.copy(), start) for array, start in self.calls]

    def warm(self, peer: Peer) -> None:
        """One unrecorded run before the rounds: pools, object stores and page caches warm."""
        if hasattr(peer, "clear_cache"):
            peer.clear_cache()
        self.check(peer.run_all(self.func, self.fresh_calls()))

    def measure(self, peer: Peer) -> dict[str, float]:
        calls = self.fresh_calls()
        if hasattr(peer, "clear_cache"):
            peer.clear_cache()  # cold: every call a miss whose result is stored
        seconds, results = timed(peer.run_all, self.func, calls)
        self.check(results)
        metrics = {"seconds": seconds}
        if hasattr(peer, "clear_cache"):
            warm_seconds, results = timed(peer.run_all, self.func, calls)
            self.check(results)
            metrics["warm_seconds"] = warm_seconds
        if peer.name == "serial":
            if self.key == "W4r":
                payloads = list(results)  # the results, as they are in the parent
            elif self.key == "W4b":
                payloads = [calls[0][0]]  # the one array
            else:
                payloads = [call[0] for call in calls]
            metrics["floor"] = arrays.memcpy_seconds(payloads)
        return metrics

    def note(self, medians: dict[str, dict[str, float]]) -> str:
        floor = medians.get("serial", {}).get("floor")
        lines = []
        if floor is not None:
            payloads = 1 if self.key == "W4b" else self.count
            lines.append(
                f"Floor (same rounds, right after serial): {payloads} x `np.copyto` of "
                f"{self.mb} MB into a destination allocated and touched beforehand: "
                f"{floor * 1e3:.1f} ms ({payloads * self.mb / floor / 1024:.1f} GB/s)."
                + (
                    f" A transport that copies the array once per call pays {self.count}x "
                    f"that: {self.count * floor * 1e3:.0f} ms."
                    if self.key == "W4b"
                    else ""
                )
            )
        if self.memory:
            lines.append(self._memory_table())
        return "\n\n".join(lines)

    # -- memory, in a fresh process -------------------------------------------------------

    def _memory_table(self) -> str:
        held = self.input_bytes() / arrays.MB
        rows = [
            "| peer | parent RSS at start | parent peak | parent shared RSS at end | workers "
            "| largest worker peak | run |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for peer, m in self.memory.items():
            if "error" in m:
                rows.append(f"| {peer} | ✗ {m['error']} | | | | | |")
                continue
            worker = f"{m['worker_peak'] / arrays.MB:,.0f} MB" if m["workers"] else "—"
            rows.append(
                f"| {peer} | {m['parent_start_mb']:,.0f} MB | {m['parent_peak_mb']:,.0f} MB "
                f"| {m['parent_shm_end_mb']:,.0f} MB | {m['workers']} | {worker} "
                f"| {m['seconds']:.3f} s |"
            )
        return (
            f"Memory, once per session, each peer in a fresh process (started, warmed, its "
            f"inputs built: the parent holds {held:.0f} MB of arrays at start; then the peak "
            "is reset and the workload runs once). Peaks are `VmHWM`; RSS counts the shared "
            "pages a process touched, so shared memory shows in the parent and in every "
            "worker that read it; files in /dev/shm that no process maps (joblib's memmaps, "
            "from the parent's side) are in no RSS.\n\n" + "\n".join(rows)
        )

    def memory_figures(self, figures: dict) -> dict[str, float]:
        """The child's figures as metrics of the report (bytes -> MB)."""
        extra = figures["parent_peak"] - figures["parent_start"]
        metrics = {"parent_extra_mb": extra / arrays.MB}
        if figures["worker_peak"]:
            metrics["worker_peak_mb"] = figures["worker_peak"] / arrays.MB
        if self.key == "W4b":
            metrics["parent_peak_ratio"] = (self.input_bytes() + extra) / self.input_bytes()
        return metrics


def large_workloads(sizes: LargeSizes) -> list[LargeData]:
    return [
        LargeData("W4", *sizes.w4, reference="Ray", bar=0.5),
        LargeData("W4b", *sizes.w4b, reference="joblib", bar=0.5),
        LargeData("W4r", *sizes.w4r, reference="Ray", bar=1.0),
    ]


def measure_memory_in_child(
    workload: LargeData, peer_name: str, quick: bool, timeout_s: float
) -> dict:
    """Run ``python -m benchmarks.large_data`` for one peer and workload: its figures, or
    ``{"error": why}``."""
    command = [sys.executable, "-m", "benchmarks.large_data", peer_name, workload.key]
    if quick:
        command.append("--quick")
    try:
        child = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=REPO_ROOT,
            env=child_environment(),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout_s:.0f} s"}
    for line in child.stdout.splitlines():
        if line.startswith(MEMORY_MARK):
            return json.loads(line[len(MEMORY_MARK) :])
    tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit status {child.returncode}: {tail[:200]}"}


def _child_main() -> int:
    """In a fresh process: start one peer, run one workload once, print its memory."""
    from benchmarks.peers import PEER_FACTORIES, SerialPeer

    parser = argparse.ArgumentParser()
    parser.add_argument("peer")
    parser.add_argument("workload")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    sizes = QUICK_LARGE if options.quick else FULL_LARGE
    (workload,) = [w for w in large_workloads(sizes) if w.key == options.workload]
    factory = dict(PEER_FACTORIES)[options.peer]
    peer = factory()
    peer.start()
    tiny = [(arrays.make_array(0, 8), 0)] * (4 * CPU_COUNT)
    peer.run_all(arrays.array_sum, tiny)  # numpy imported everywhere, task code loaded
    peer.run_all(arrays.make_array, [(seed, 8) for seed in range(4 * CPU_COUNT)])
    workload.prepare(SerialPeer())
    if hasattr(peer, "clear_cache"):
        peer.clear_cache()
    gc.collect()
    release_free_memory()
    start = vm_status()["VmRSS"]
    reset_peak()
    seconds, results = timed(peer.run_all, workload.func, workload.calls)
    workload.check(results)
    del results
    parent = vm_status()
    probe = peer.run_all(arrays.worker_pid, [(0.05, tag) for tag in range(4 * CPU_COUNT)])
    workers = sorted(set(probe) - {os.getpid()})
    worker_peaks = [vm_status(pid)["VmHWM"] for pid in workers]
    figures = {
        "seconds": seconds,
        "parent_start": start,
        "parent_peak": parent["VmHWM"],
        "parent_start_mb": start / arrays.MB,
        "parent_peak_mb": parent["VmHWM"] / arrays.MB,
        "parent_shm_end_mb": parent["RssShmem"] / arrays.MB,
        "worker_peak": max(worker_peaks, default=0),
        "workers": len(workers),
    }
    print(MEMORY_MARK + json.dumps(figures), flush=True)
    peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
