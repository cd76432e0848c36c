"""Retries decided in the parent: backoffs hold no worker and never delay siblings."""

from __future__ import annotations

import os
import time

import pytest

from paralleltask import (
    ProcessExecutor,
    RetryPolicy,
    ThreadExecutor,
    WorkerCrashedError,
    entrypoint,
    task,
)


def count_attempt(folder):
    """Record one attempt as a file (tasks run in other processes: globals don't count)."""
    path = os.path.join(folder, f"{time.monotonic_ns()}-{os.getpid()}")
    open(path, "w").close()
    return len(os.listdir(folder))


@task(retry_policy=RetryPolicy(initial_interval=0.8, jitter=False, retry_on=KeyError))
def fails_once_then_waits(folder):
    if count_attempt(folder) == 1:
        raise KeyError("first attempt")
    return time.monotonic()


@task
def quick(_):
    time.sleep(0.2)
    return time.monotonic()


@task(retry_policy=RetryPolicy(initial_interval=0.01, jitter=False, max_attempts=3))
def crashes_twice(folder):
    if count_attempt(folder) < 3:
        os._exit(1)
    return "third time lucky"


def test_backoff_holds_no_worker_and_does_not_delay_a_sibling(tmp_path):
    with ProcessExecutor(max_workers=1) as one_worker:

        @entrypoint(executor=one_worker)
        def main(folder):
            started = time.monotonic()
            retried = fails_once_then_waits(folder)
            sibling = quick(None)
            return sibling.result() - started, retried.result() - started

        sibling_done, retried_done = main.invoke(str(tmp_path))
    # The only worker ran the sibling during the retried call's 0.8 s backoff.
    assert sibling_done < 0.6
    assert retried_done >= 0.8


def test_worker_crash_is_retried_by_a_policy(tmp_path):
    @entrypoint()
    def main(folder):
        return crashes_twice(folder).result()

    assert main.invoke(str(tmp_path)) == "third time lucky"
    assert len(os.listdir(tmp_path)) == 3


def test_crash_without_policy_is_not_retried(tmp_path):
    @task
    def crash(folder):
        count_attempt(folder)
        os._exit(1)

    @entrypoint()
    def main(folder):
        return crash(folder).result()

    with pytest.raises(WorkerCrashedError):
        main.invoke(str(tmp_path))
    assert len(os.listdir(tmp_path)) == 1


def test_bad_retry_policy_is_refused():
    with pytest.raises(TypeError, match="retry_policy"):
        task(retry_policy="three times")
    with pytest.raises(TypeError, match="retry_policy"):
        entrypoint(retry_policy=[RetryPolicy(), 3])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("executor", [None, ThreadExecutor(2)], ids=["process", "thread"])
def test_a_call_cancelled_in_its_backoff_never_runs_again_and_its_run_ends(tmp_path, executor):
    # The cancelled call's run waits for it to settle: a backoff that dropped it
    # without a word would hang the run.
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    @entrypoint(executor=executor)
    def main(folder):
        future = fails_once_then_waits(folder)
        while not os.listdir(folder):  # the first attempt has started
            time.sleep(0.005)
        time.sleep(0.2)  # it failed, and waits out its 0.8 s backoff in the parent
        return future.cancel(), future.cancelled()

    started = time.monotonic()
    assert main.invoke(str(attempts)) == (True, True)
    assert time.monotonic() - started < 0.8  # it did not wait for the backoff
    time.sleep(1.0)
    assert len(os.listdir(attempts)) == 1
