"""Where streaming's cost on W2 goes: CPU of the parent and of each worker (from /proc),
and wall time, per call, over many alternated runs of 1 000 identity calls.

    python benchmarks/w2s_probe.py [calls] [rounds]

Variants, interleaved in every round: ``invoke``; ``stream`` (updates mode, as W2s);
``stream, no wake-ups`` (chunks queued, the consumer woken only at the end); ``stream, no
chunks`` (the stream's set-up without a chunk); ``invoke in a thread`` (invoke in a thread
started for it: what a thread per stream would cost). Linux only. Figures from one run move by
a few percent: compare variants within a run.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import workloads

from paralleltask import ProcessExecutor, entrypoint, task
from paralleltask._stream import StreamSink
from paralleltask.executors import process

identity = task(workloads.identity)


@entrypoint()
def job(n: int) -> list[int]:
    return [f.result() for f in [identity(i) for i in range(n)]]


def _queue_without_waking(sink: StreamSink, mode: str, chunk) -> None:
    if mode in sink.modes:
        sink._queued.append((mode, chunk))


def _in_a_thread(func, *args) -> None:
    thread = threading.Thread(target=func, args=args)
    thread.start()
    thread.join()


def _seconds_of_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu() -> tuple[float, float]:
    pool = next(iter(process._pools.values()))
    workers = sum(_seconds_of_cpu(w.process.pid) for w in pool._workers)
    return _seconds_of_cpu(os.getpid()), workers


def main(calls: int, rounds: int) -> None:
    ProcessExecutor().start()
    job.invoke(2 * calls)
    real_emit = StreamSink.emit
    variants = {
        "invoke": (None, lambda: job.invoke(calls)),
        "stream": (real_emit, lambda: list(job.stream(calls))),
        "stream, no wake-ups": (_queue_without_waking, lambda: list(job.stream(calls))),
        "stream, no chunks": (lambda *_: None, lambda: list(job.stream(calls))),
        "invoke in a thread": (None, lambda: _in_a_thread(job.invoke, calls)),
    }
    totals = {name: [0.0, 0.0, 0.0] for name in variants}
    for _ in range(rounds):
        for name, (emit, run) in variants.items():
            StreamSink.emit = emit or real_emit
            gc.collect()
            parent, workers = _cpu()
            started = time.perf_counter()
            run()
            wall = time.perf_counter() - started
            parent_after, workers_after = _cpu()
            StreamSink.emit = real_emit
            total = totals[name]
            total[0] += parent_after - parent
            total[1] += workers_after - workers
            total[2] += wall
    per_call = 1e6 / (rounds * calls)
    base = totals["invoke"][2]
    for name, (parent, workers, wall) in totals.items():
        print(
            f"{name:20s} parent CPU {parent * per_call:6.2f} µs  workers CPU "
            f"{workers * per_call:6.2f} µs  wall {wall * per_call:6.2f} µs  "
            f"({wall / base:.3f}x invoke)"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 100,
    )
