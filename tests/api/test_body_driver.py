"""The body driver (paralleltask/_body.py): one generator of a run's steps that the sync
and the async body both step through. What the two paths must keep as they were when
each had a loop of its own: retries and their attempts, the error raised as the body
raised it (its context, a StopIteration), an interrupt's pause, a Ctrl-C's stop."""

from __future__ import annotations

import asyncio

import pytest

from paralleltask import (
    Command,
    InlineExecutor,
    RetryPolicy,
    entrypoint,
    get_runtime,
    interrupt,
)
from paralleltask.stores.memory import MemoryStore

QUICK = RetryPolicy(initial_interval=0.001, jitter=False, max_attempts=3, retry_on=ValueError)


def _flaky(fail_times: int, seen: list):
    def body(x):
        seen.append(get_runtime().execution_info.node_attempt)
        if len(seen) <= fail_times:
            raise ValueError(f"attempt {len(seen)}")
        return x * 2

    return body


def _async(body):
    async def run(x):
        return body(x)

    run.__name__ = "body"
    return run


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_body_is_retried_with_its_attempt_numbered(is_async):
    seen: list = []
    body = _flaky(2, seen)
    main = entrypoint(retry_policy=QUICK, executor=InlineExecutor())(
        _async(body) if is_async else body
    )
    result = asyncio.run(main.ainvoke(3)) if is_async else main.invoke(3)
    assert result == 6
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_last_attempts_error_is_raised_noted_once(is_async):
    seen: list = []
    body = _flaky(5, seen)
    main = entrypoint(retry_policy=QUICK, executor=InlineExecutor())(
        _async(body) if is_async else body
    )
    with pytest.raises(ValueError, match="attempt 3") as raised:
        asyncio.run(main.ainvoke(3)) if is_async else main.invoke(3)
    notes = [note for note in raised.value.__notes__ if note.startswith("During task")]
    assert len(notes) == 1
    assert seen == [1, 2, 3]


def test_a_sync_bodys_error_keeps_its_context():
    @entrypoint(executor=InlineExecutor())
    def main(x):
        try:
            raise KeyError("first")
        except KeyError:
            raise ValueError("second")  # noqa: B904

    with pytest.raises(ValueError) as raised:
        main.invoke(1)
    assert isinstance(raised.value.__context__, KeyError)


def test_a_sync_bodys_stop_iteration_is_raised_as_it_is():
    # A generator may not raise StopIteration (PEP 479): the driver returns the error
    # and its stepper raises it, so invoke() raises what the body raised.
    @entrypoint(executor=InlineExecutor())
    def main(x):
        raise StopIteration(x)

    with pytest.raises(StopIteration):
        main.invoke(1)


def test_an_async_bodys_stop_iteration_is_a_runtime_error_as_in_any_coroutine():
    @entrypoint(executor=InlineExecutor())
    async def main(x):
        raise StopIteration(x)

    with pytest.raises(RuntimeError, match="StopIteration"):
        asyncio.run(main.ainvoke(1))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_an_interrupt_pauses_the_run_and_a_resume_ends_it(is_async):
    def body(x):
        return {"x": x, "answer": interrupt("why?")}

    main = entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())(
        _async(body) if is_async else body
    )
    config = {"configurable": {"thread_id": "t"}}
    invoke = (
        (lambda v: asyncio.run(main.ainvoke(v, config)))
        if is_async
        else (lambda v: main.invoke(v, config))
    )
    paused = invoke(1)
    assert [i.value for i in paused["__interrupt__"]] == ["why?"]
    assert invoke(Command(resume="because")) == {"x": 1, "answer": "because"}


def test_a_keyboard_interrupt_is_not_retried():
    seen: list = []

    @entrypoint(
        retry_policy=RetryPolicy(max_attempts=3, retry_on=lambda e: True),
        executor=InlineExecutor(),
    )
    def main(x):
        seen.append(x)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        main.invoke(1)
    assert seen == [1]


def test_an_async_body_cancelled_while_retrying_stops():
    seen: list = []

    @entrypoint(
        retry_policy=RetryPolicy(initial_interval=30, jitter=False, retry_on=ValueError),
        executor=InlineExecutor(),
    )
    async def main(x):
        seen.append(x)
        raise ValueError("again")

    async def cancel_during_the_sleep():
        run = asyncio.ensure_future(main.ainvoke(1))
        while not seen:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(cancel_during_the_sleep())
    assert seen == [1]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_ctrl_c_between_two_steps_still_ends_the_run(is_async, monkeypatch):
    """A signal handler can raise at the start of any function: in the stepper's own
    code between two steps, too. The driver must still get it (stop the calls, close
    the thread, leave the run), not be left suspended until it is collected."""
    from paralleltask import _body, _context

    real_exit = _body._Steps.__exit__
    fired = []

    def exit_raising_once(self, kind, error, traceback):
        if error is None and not fired:
            fired.append(True)
            raise KeyboardInterrupt  # where a Ctrl-C's handler would raise it
        return real_exit(self, kind, error, traceback)

    monkeypatch.setattr(_body._Steps, "__exit__", exit_raising_once)
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    store = MemoryStore()
    body = lambda x: x + 1  # noqa: E731
    run = entrypoint(executor=InlineExecutor(), checkpointer=store)(
        _async(body) if is_async else body
    )
    config = {"configurable": {"thread_id": f"ctrl-c-between-{is_async}"}}
    with pytest.raises(KeyboardInterrupt):
        if is_async:
            asyncio.run(run.ainvoke(1, config))
        else:
            run.invoke(1, config)
    assert fired and _context.current_run.get() is None
    import gc

    gc.collect()
    assert unraisable == []  # no driver left to ignore its GeneratorExit
