"""Task functions and inputs of the large-data workloads (W4, W4b, W4r): numpy arrays.

Module-level functions, importable by every worker (``benchmarks.arrays``), so every peer
runs the very same code. Each reads every byte it is given, or writes every byte it returns.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

FLOAT64 = 8  # bytes per element
MB = 1 << 20


def array_sum(array: np.ndarray, start: int = 0) -> float:
    """A small value from a large array: the sum of ``array[start:]`` (reads every byte)."""
    return float(array[start:].sum())


def make_array(seed: int, length: int) -> np.ndarray:
    """A large result from a small argument: ``length`` seeded uniform float64 values."""
    return np.random.default_rng(seed).random(length)


def worker_pid(seconds: float, tag: int = 0) -> int:
    """The process running this call (after a short sleep, so that every worker gets some
    of a batch of them); ``tag`` only makes calls distinct (for result caches)."""
    time.sleep(seconds)
    return os.getpid()


def random_arrays(count: int, nbytes: int, seed: int = 20241115) -> list[np.ndarray]:
    """``count`` distinct seeded float64 arrays of ``nbytes`` bytes each."""
    return [make_array(seed + index, nbytes // FLOAT64) for index in range(count)]


def digest(array: np.ndarray) -> tuple[str, tuple, str]:
    """What a returned array is checked by: dtype, shape and a hash of its bytes."""
    contiguous = np.ascontiguousarray(array)
    return str(contiguous.dtype), contiguous.shape, hashlib.sha256(contiguous.data).hexdigest()


def memcpy_seconds(payloads: list[np.ndarray], repeats: int = 3) -> float:
    """The floor of moving ``payloads`` once: one ``np.copyto`` of each into a destination
    allocated and touched beforehand (the median of ``repeats`` passes)."""
    destination = np.empty_like(payloads[0])
    destination.fill(0.0)  # fault its pages in before the clock starts
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for payload in payloads:
            np.copyto(destination, payload)
        passes.append(time.perf_counter() - started)
    return sorted(passes)[repeats // 2]
