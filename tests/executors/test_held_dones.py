"""A worker running short calls back to back sends their Dones together (one message,
one read in the parent), never holding one back behind a call that may run long."""

from __future__ import annotations

import time

import pytest

from paralleltask import ProcessExecutor, _protocol, entrypoint, task
from paralleltask.executors import _pool_messages


@task
def tiny(x):
    return x * 2


@task
def slow(seconds):
    time.sleep(seconds)
    return seconds


@pytest.fixture
def message_kinds(monkeypatch):
    kinds: list[int] = []
    loads = _pool_messages.loads

    def counting(data):
        message = loads(data)
        kinds.append(message.kind)
        return message

    monkeypatch.setattr(_pool_messages, "loads", counting)
    return kinds


def test_many_short_calls_come_back_right_several_to_a_message(message_kinds):
    @entrypoint()
    def many(n):
        return [f.result() for f in [tiny(i) for i in range(n)]]

    assert many.invoke(3000) == [2 * i for i in range(3000)]
    dones = message_kinds.count(_protocol.DONE)
    batches = message_kinds.count(_protocol.DONES)
    assert batches > 0 and dones + batches < 3000  # fewer messages than results


def test_a_call_of_unknown_length_never_holds_back_the_results_before_it():
    executor = ProcessExecutor(max_workers=1).start()
    try:

        @entrypoint(executor=executor)
        def body(_):
            done_at: dict[int, float] = {}
            futures = [tiny(i) for i in range(20)]
            for i, future in enumerate(futures):  # (done-callbacks run one at a time)
                future.add_done_callback(lambda _, i=i: done_at.setdefault(i, time.monotonic()))
            started = time.monotonic()
            last = slow(0.6)  # queued behind them, on the one worker: its length unknown
            values = [f.result() for f in futures]
            return values, max(done_at.values()) - started, last.result()

        values, tiny_done, last = body.invoke(0)
        assert values == [2 * i for i in range(20)] and last == 0.6
        assert tiny_done < 0.4  # they came back before the slow call ended
    finally:
        executor.shutdown()


def test_a_worker_stopped_with_dones_held_sends_them_first():
    executor = ProcessExecutor(max_workers=1).start()

    @entrypoint(executor=executor)
    def body(n):
        return [f.result() for f in [tiny(i) for i in range(n)]]

    try:
        assert body.invoke(500) == [2 * i for i in range(500)]
    finally:
        executor.shutdown()  # (STOP after the last call: nothing held is lost)
