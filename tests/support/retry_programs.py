"""Retry helpers shared by tests/retry and the fresh interpreter one of its tests runs a
program in (a policy that does not pickle breaks the pool it runs on): attempts counted in
files, a fast RetryPolicy, and that program."""

from __future__ import annotations

import os
import threading
from typing import Any

from tests.support.impls import Api

#: Tiny, deterministic backoff: retries cost milliseconds.
FAST = {"initial_interval": 0.01, "jitter": False}


def attempt(path: str) -> int:
    """Record one attempt in ``path``; the attempt's number, from 1."""
    with open(path, "ab") as f:
        f.write(b"x")
    return os.path.getsize(path)


def attempts(path: Any) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


def fast(api: Api, **kwargs: Any) -> Any:
    """A RetryPolicy of ``api``'s with tiny intervals and no jitter."""
    return api.RetryPolicy(**{**FAST, **kwargs})


def always(exc_type: type):
    """A task body that fails every attempt with ``exc_type('attempt N')``."""

    def fail(path):
        n = attempt(path)
        raise exc_type(f"attempt {n}")

    return fail


def unpicklable_policy_program(api: Api, tmp_path: Any, where: str) -> Any:
    lock = threading.Lock()

    def decide(exc):
        with lock:
            return isinstance(exc, KeyError)

    policy = fast(api, max_attempts=3, retry_on=decide)
    task_policy = {"retry_policy": policy} if where == "task" else {}
    entry_policy = {"retry_policy": policy} if where == "entrypoint" else {}
    flaky = api.task(**task_policy)(always(KeyError))
    double = api.task(lambda x: 2 * x)

    @api.entrypoint(**entry_policy)
    def main(d):
        try:
            flaky(f"{d}/k").result()
        except KeyError as exc:
            return exc.args[0], double(21).result()

    return main
