"""What the machine itself allows a CPU-bound batch: no pool, no scheduling.

``static_split(func, calls)`` starts one process per usable core, hands each its share of
the calls (every ``n``-th one) before the clock starts, then times from a single "go" to
the last share's results. On a VM whose two vCPUs share a physical core, or whose clock
drops under load, this stays below 2x however good the pool is: it is the ceiling that
W1's speed-ups are read against.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any


def _run_share(func: Callable, share: Sequence[tuple], go: Any, results: Any) -> None:
    results.send("ready")
    go.wait()
    results.send([func(*call) for call in share])


def static_split(func: Callable, calls: Sequence[tuple], workers: int) -> tuple[float, list]:
    """``(seconds, results)``: ``calls`` split evenly over ``workers`` fresh processes,
    timed from the moment they are all ready and waiting."""
    context = multiprocessing.get_context("spawn")  # no fork of this threaded harness
    go = context.Event()
    shares = [calls[index::workers] for index in range(workers)]
    pipes = [context.Pipe(duplex=False) for _ in shares]
    processes = [
        context.Process(target=_run_share, args=(func, share, go, sender), daemon=True)
        for share, (_, sender) in zip(shares, pipes, strict=True)
    ]
    for process in processes:
        process.start()
    try:
        for receiver, _ in pipes:
            receiver.recv()  # "ready"
        started = perf_counter()
        go.set()
        partials = [receiver.recv() for receiver, _ in pipes]
        seconds = perf_counter() - started
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        for receiver, sender in pipes:
            receiver.close()
            sender.close()
    results: list = [None] * len(calls)
    for index, partial in enumerate(partials):
        results[index::workers] = partial
    return seconds, results
