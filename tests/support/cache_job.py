"""A cached job that tests/cache runs in the session and in fresh interpreters (the LMDB
cache outlives the process and is shared): both import it from here."""

from __future__ import annotations

import os
import time

from paralleltask import CachePolicy, entrypoint, task


def record(folder, x):
    """Count executions with files: tasks run in other processes."""
    path = os.path.join(folder, f"{x!r}-{time.monotonic_ns()}")
    open(path, "w").close()


@task(cache_policy=CachePolicy())
def cached_square(folder, x, *, offset=0):
    record(folder, x)
    return x * x + offset


def runs(folder):
    return len(os.listdir(folder))


def square_job(store):
    @entrypoint(cache=store)
    def main(args):
        folder, xs = args
        return [f.result() for f in [cached_square(folder, x) for x in xs]]

    return main
