"""Task functions and data for the benchmarks.

Everything here is pure Python, deterministic and importable by worker processes
(``benchmarks.workloads``), so every peer runs the very same code.
"""

from __future__ import annotations

import itertools
import os
import random
import string
import time
from collections import Counter

_MASK = (1 << 61) - 1


def identity(value):
    """The cheapest possible task: its cost is the executor's own overhead."""
    return value


def cpu_burn(seed: int, loops: int) -> int:
    """Spin a pure-Python integer loop; the result depends on every iteration."""
    state = seed
    for step in range(loops):
        state = (state * 6364136223846793005 + step) & _MASK
    return state


def cpu_burn_or_die(seed: int, loops: int, doomed: int) -> int:
    """``cpu_burn``, except that the call with ``seed == doomed`` kills its worker."""
    if seed == doomed:
        os._exit(70)
    return cpu_burn(seed, loops)


def die() -> None:
    """Kill the worker running this call."""
    os._exit(70)


def spin() -> None:
    """Never return (a pure-Python loop: only killing the process stops it)."""
    while True:
        pass


def calibrate_loops(target_seconds: float, probe_loops: int = 200_000) -> int:
    """Loop count for which ``cpu_burn`` takes about ``target_seconds`` in this process."""
    loops = probe_loops
    for _ in range(3):
        elapsed = min(_time_cpu_burn(loops) for _ in range(3))
        loops = max(1, round(loops * target_seconds / elapsed))
    return loops


def _time_cpu_burn(loops: int) -> float:
    started = time.perf_counter()
    cpu_burn(0, loops)
    return time.perf_counter() - started


def count_words_and_bigrams(chunk: str) -> tuple[Counter, Counter]:
    """The map step: word counts and word-pair counts of one chunk of text."""
    words = chunk.split()
    bigrams = Counter(f"{first} {second}" for first, second in itertools.pairwise(words))
    return Counter(words), bigrams


def reduce_counts(partials) -> tuple[Counter, Counter]:
    """The reduce step, in the parent: add up the per-chunk counters."""
    words, bigrams = Counter(), Counter()
    for chunk_words, chunk_bigrams in partials:
        words.update(chunk_words)
        bigrams.update(chunk_bigrams)
    return words, bigrams


def make_vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct lower-case pseudo-words of 2 to 10 letters."""
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(2, 10)
        words.add("".join(rng.choices(string.ascii_lowercase, k=length)))
    return sorted(words)


def make_text_chunks(
    count: int, chunk_bytes: int, vocabulary_size: int = 4000, seed: int = 20240601
) -> list[str]:
    """``count`` chunks of about ``chunk_bytes`` ASCII characters of Zipf-distributed words."""
    rng = random.Random(seed)
    vocabulary = make_vocabulary(vocabulary_size, rng)
    zipf_weights = [1.0 / rank for rank in range(1, vocabulary_size + 1)]
    rng.shuffle(vocabulary)
    return [_make_chunk(vocabulary, zipf_weights, chunk_bytes, rng) for _ in range(count)]


def _make_chunk(vocabulary, weights, chunk_bytes: int, rng: random.Random) -> str:
    average_word = sum(len(word) * w for word, w in zip(vocabulary, weights, strict=True)) / sum(
        weights
    )
    words = rng.choices(vocabulary, weights=weights, k=int(chunk_bytes / (average_word + 1)) + 64)
    text = " ".join(words)
    return text[: text.rfind(" ", 0, chunk_bytes)]
