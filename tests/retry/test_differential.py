"""Differential tests of retry policies: ``langgraph.func`` and ``paralleltask`` (process
pool, threads, inline) must retry the same calls the same number of times.

Attempts are counted in files under ``tmp_path`` (a task runs in another process, where
the parent's globals do not count): each attempt appends one byte.

LangGraph's ``default_retry_on`` runs ``import httpx`` and ``import requests``; every test
of this module runs with FAKE modules under those names in ``sys.modules`` (the autouse
``fake_http`` fixture), for LangGraph and paralleltask alike, so the real ones are never
imported or consulted by a retry decision here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import types
from typing import Any

import pytest

import paralleltask
from paralleltask import (
    ProcessExecutor,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from tests.support import ROOT
from tests.support.impls import (
    EXECUTORS,
    IMPLS,
    INLINE,
    LANGGRAPH,
    PARALLELTASK,
    PROCESS,
    THREAD,
    Api,
    make_api,
)
from tests.support.retry_programs import (
    FAST,
    always,
    attempt,
    attempts,
    fast,
    unpicklable_policy_program,
)


@pytest.fixture(params=IMPLS)
def api(request) -> Api:
    return make_api(request.param)


@pytest.fixture
def lg_types():
    return pytest.importorskip("langgraph.types")


# -- fake httpx / requests ---------------------------------------------------------------


def make_fake_httpx() -> types.ModuleType:
    httpx = types.ModuleType("httpx")

    class HTTPError(Exception):
        pass

    class HTTPStatusError(HTTPError):
        def __init__(self, message, *, request=None, response=None):
            super().__init__(message)
            self.request = request
            self.response = response

    class ConnectError(HTTPError):
        pass

    class Response:  # httpx's Response has no __bool__: always truthy
        def __init__(self, status_code):
            self.status_code = status_code

    httpx.HTTPError = HTTPError
    httpx.HTTPStatusError = HTTPStatusError
    httpx.ConnectError = ConnectError
    httpx.Response = Response
    return httpx


def make_fake_requests() -> types.ModuleType:
    requests = types.ModuleType("requests")

    class RequestException(IOError):  # as requests: an OSError
        def __init__(self, *args, response=None, request=None):
            super().__init__(*args)
            self.response = response
            self.request = request

    class HTTPError(RequestException):
        pass

    class ConnectionError(RequestException):  # not the builtin ConnectionError
        pass

    class Response:
        def __init__(self, status_code):
            self.status_code = status_code

        @property
        def ok(self):
            return self.status_code < 400

        def __bool__(self):  # as requests: a Response is true when it is ok
            return self.ok

    requests.RequestException = RequestException
    requests.HTTPError = HTTPError
    requests.ConnectionError = ConnectionError
    requests.Response = Response
    return requests


@pytest.fixture(autouse=True)
def fake_http(monkeypatch):
    """Every test of this module runs with the fake httpx and requests."""
    fakes = types.SimpleNamespace(httpx=make_fake_httpx(), requests=make_fake_requests())
    monkeypatch.setitem(sys.modules, "httpx", fakes.httpx)
    monkeypatch.setitem(sys.modules, "requests", fakes.requests)
    return fakes


# -- RetryPolicy and default_retry_on ----------------------------------------------------


def test_retry_policy_has_langgraphs_fields_order_and_defaults(lg_types):
    ours, theirs = paralleltask.RetryPolicy, lg_types.RetryPolicy
    assert (
        ours._fields
        == theirs._fields
        == (
            "initial_interval",
            "backoff_factor",
            "max_interval",
            "max_attempts",
            "jitter",
            "retry_on",
        )
    )
    mine, lgs = ours(), theirs()
    for field in ours._fields[:-1]:
        assert getattr(mine, field) == getattr(lgs, field), field
        assert type(getattr(mine, field)) is type(getattr(lgs, field)), field
    assert (mine.initial_interval, mine.backoff_factor, mine.max_interval) == (0.5, 2.0, 128.0)
    assert (mine.max_attempts, mine.jitter) == (3, True)
    assert mine.retry_on is paralleltask.default_retry_on
    assert mine.retry_on.__name__ == lgs.retry_on.__name__ == "default_retry_on"
    positional = (0.1, 3.0, 9.0, 7, False, KeyError)
    assert tuple(ours(*positional)) == tuple(theirs(*positional)) == positional
    assert ours(*positional) == theirs(*positional)
    assert ours(*positional)._asdict() == theirs(*positional)._asdict()
    assert ours(max_attempts=5)._replace(jitter=False) == ours(0.5, 2.0, 128.0, 5, False)


class CustomError(Exception):
    pass


EXCEPTIONS = {
    "ValueError": (ValueError("v"), False),
    "TypeError": (TypeError("t"), False),
    "KeyError": (KeyError("k"), False),
    "IndexError": (IndexError("i"), False),
    "RuntimeError": (RuntimeError("r"), False),
    "NotImplementedError": (NotImplementedError("n"), False),
    "OSError": (OSError("o"), False),
    "FileNotFoundError": (FileNotFoundError("f"), False),
    "ConnectionError": (ConnectionError("c"), True),
    "ConnectionResetError": (ConnectionResetError("c"), True),
    "TimeoutError": (TimeoutError("t"), False),
    "ZeroDivisionError": (ZeroDivisionError("z"), False),
    "ImportError": (ImportError("i"), False),
    "NameError": (NameError("n"), False),
    "StopIteration": (StopIteration(), False),
    "Exception": (Exception("e"), True),
    "CustomError": (CustomError("c"), True),
    "WorkerCrashedError": (WorkerCrashedError("crashed", task="t", exitcode=-9), True),
    "TaskTimeoutError": (TaskTimeoutError("t", 2.0, kind="run", run_timeout=1.0), True),
    "SerializationError": (SerializationError("no pickle", task="t", argument="0"), True),
}


@pytest.mark.parametrize("name", list(EXCEPTIONS))
def test_default_retry_on_decides_as_langgraphs(name, fake_http, lg_types):
    exc, expected = EXCEPTIONS[name]
    langgraph_default = lg_types.RetryPolicy().retry_on
    assert langgraph_default(exc) is expected
    assert paralleltask.default_retry_on(exc) is expected


def _http_errors(fakes: Any) -> dict[str, tuple[Exception, bool]]:
    httpx, requests = fakes.httpx, fakes.requests
    return {
        "httpx 500": (httpx.HTTPStatusError("e", response=httpx.Response(500)), True),
        "httpx 503": (httpx.HTTPStatusError("e", response=httpx.Response(503)), True),
        "httpx 404": (httpx.HTTPStatusError("e", response=httpx.Response(404)), False),
        "httpx 429": (httpx.HTTPStatusError("e", response=httpx.Response(429)), False),
        "httpx ConnectError": (httpx.ConnectError("e"), True),
        # requests: a Response is falsy when not ok, so LangGraph retries any HTTPError
        # carrying an error response (its `if exc.response` test), a 404 too.
        "requests 500": (requests.HTTPError("e", response=requests.Response(500)), True),
        "requests 404": (requests.HTTPError("e", response=requests.Response(404)), True),
        "requests 200": (requests.HTTPError("e", response=requests.Response(200)), False),
        "requests no response": (requests.HTTPError("e"), True),
        "requests ConnectionError": (requests.ConnectionError("e"), False),  # an OSError
    }


HTTP_CASES = [
    "httpx 500",
    "httpx 503",
    "httpx 404",
    "httpx 429",
    "httpx ConnectError",
    "requests 500",
    "requests 404",
    "requests 200",
    "requests no response",
    "requests ConnectionError",
]


@pytest.mark.parametrize("case", HTTP_CASES)
def test_default_retry_on_http_errors_with_fake_modules(case, fake_http, lg_types):
    exc, expected = _http_errors(fake_http)[case]
    assert lg_types.RetryPolicy().retry_on(exc) is expected
    assert paralleltask.default_retry_on(exc) is expected


def test_paralleltask_default_retry_on_needs_no_http_module(monkeypatch):
    """paralleltask only looks httpx/requests up in sys.modules (documented); LangGraph's
    imports them, so with both blocked only paralleltask's side is checked."""
    monkeypatch.setitem(sys.modules, "httpx", None)  # `import httpx` would now fail
    monkeypatch.setitem(sys.modules, "requests", None)
    assert paralleltask.default_retry_on(ValueError("v")) is False
    assert paralleltask.default_retry_on(ConnectionError("c")) is True
    assert paralleltask.default_retry_on(CustomError("c")) is True


# -- retry_on: a type, a sequence, a callable, the default --------------------------------


def run_one(api: Api, task: Any, *args: Any) -> tuple[Any, Any]:
    """Invoke an entrypoint calling ``task(*args)``; ``(result, exception)``."""

    @api.entrypoint()
    def main(args):
        try:
            return task(*args).result(), None
        except Exception as exc:
            return None, exc

    return main.invoke(args)


def test_retry_on_an_exception_type(api, tmp_path):
    flaky = api.task(retry_policy=fast(api, max_attempts=3, retry_on=KeyError))(always(KeyError))
    _, exc = run_one(api, flaky, str(tmp_path / "k"))
    assert (type(exc), exc.args, attempts(tmp_path / "k")) == (KeyError, ("attempt 3",), 3)

    final = api.task(retry_policy=fast(api, max_attempts=3, retry_on=KeyError))(always(ValueError))
    _, exc = run_one(api, final, str(tmp_path / "v"))
    assert (type(exc), str(exc), attempts(tmp_path / "v")) == (ValueError, "attempt 1", 1)

    policy = fast(api, max_attempts=2, retry_on=LookupError)
    sub = api.task(retry_policy=policy)(always(IndexError))
    _, exc = run_one(api, sub, str(tmp_path / "i"))
    assert (type(exc), str(exc), attempts(tmp_path / "i")) == (IndexError, "attempt 2", 2)


@pytest.mark.parametrize("kind", [tuple, list])
def test_retry_on_a_sequence_of_types(api, tmp_path, kind):
    policy = fast(api, max_attempts=4, retry_on=kind([KeyError, ZeroDivisionError]))
    for name, exc_type, expected in [
        ("k", KeyError, 4),
        ("z", ZeroDivisionError, 4),
        ("t", TypeError, 1),
    ]:
        flaky = api.task(retry_policy=policy)(always(exc_type))
        _, exc = run_one(api, flaky, str(tmp_path / name))
        assert type(exc) is exc_type
        assert attempts(tmp_path / name) == expected, name


def test_retry_on_a_callable(api, tmp_path):
    def decide(exc):
        return "again" in str(exc)

    def flaky(path, word):
        n = attempt(path)
        raise RuntimeError(f"{word} {n}")

    retried = api.task(retry_policy=fast(api, max_attempts=5, retry_on=decide))(flaky)
    _, exc = run_one(api, retried, str(tmp_path / "a"), "again")
    assert (type(exc), str(exc), attempts(tmp_path / "a")) == (RuntimeError, "again 5", 5)
    _, exc = run_one(api, retried, str(tmp_path / "s"), "stop")
    assert (str(exc), attempts(tmp_path / "s")) == ("stop 1", 1)


def test_default_retry_on_in_a_policy(api, tmp_path, fake_http):
    policy = fast(api)  # default max_attempts=3, retry_on=default_retry_on
    for name, exc_type, expected in [
        ("conn", ConnectionError, 3),
        ("value", ValueError, 1),
        ("os", OSError, 1),
        ("custom", CustomError, 3),
        ("timeout", TimeoutError, 1),
    ]:
        flaky = api.task(retry_policy=policy)(always(exc_type))
        _, exc = run_one(api, flaky, str(tmp_path / name))
        assert type(exc) is exc_type and str(exc) == f"attempt {expected}", name
        assert attempts(tmp_path / name) == expected, name


def test_success_after_failures_returns_the_successful_attempts_value(api, tmp_path):
    def flaky(path, fails):
        n = attempt(path)
        if n <= fails:
            raise ConnectionError(f"attempt {n}")
        return f"ok on {n}"

    task = api.task(retry_policy=fast(api, max_attempts=4, retry_on=ConnectionError))(flaky)
    assert run_one(api, task, str(tmp_path / "a"), 3) == ("ok on 4", None)
    assert attempts(tmp_path / "a") == 4
    _, exc = run_one(api, task, str(tmp_path / "b"), 4)
    assert (type(exc), str(exc), attempts(tmp_path / "b")) == (ConnectionError, "attempt 4", 4)


def test_max_attempts_one_never_retries(api, tmp_path):
    task = api.task(retry_policy=fast(api, max_attempts=1, retry_on=Exception))(always(KeyError))
    _, exc = run_one(api, task, str(tmp_path / "a"))
    assert (type(exc), attempts(tmp_path / "a")) == (KeyError, 1)


def test_first_matching_policy_wins(api, tmp_path):
    policies = [
        fast(api, max_attempts=2, retry_on=KeyError),
        fast(api, max_attempts=4, retry_on=(LookupError, ValueError)),
        fast(api, max_attempts=5, retry_on=Exception),
    ]
    for name, exc_type, expected in [
        ("key", KeyError, 2),  # the first policy, though the second and third match too
        ("index", IndexError, 4),
        ("value", ValueError, 4),
        ("type", TypeError, 5),
    ]:
        task = api.task(retry_policy=policies)(always(exc_type))
        _, exc = run_one(api, task, str(tmp_path / name))
        assert (type(exc), exc.args) == (exc_type, (f"attempt {expected}",)), name
        assert attempts(tmp_path / name) == expected, name
    only = api.task(retry_policy=policies[:1])(always(TypeError))
    _, exc = run_one(api, only, str(tmp_path / "none"))
    assert attempts(tmp_path / "none") == 1


def test_a_base_exception_is_never_retried(api, tmp_path):
    class Stop(BaseException):
        pass

    def stop(path):
        attempt(path)
        raise Stop("stop")

    task = api.task(retry_policy=fast(api, max_attempts=3, retry_on=lambda exc: True))(stop)

    @api.entrypoint()
    def main(path):
        try:
            return task(path).result()
        except Stop:
            return "stopped"

    assert main.invoke(str(tmp_path / "s")) == "stopped"
    assert attempts(tmp_path / "s") == 1


def test_retry_note_is_added_once(api, tmp_path):
    task = api.task(name="flaky", retry_policy=fast(api, max_attempts=3, retry_on=KeyError))(
        always(KeyError)
    )
    _, exc = run_one(api, task, str(tmp_path / "n"))
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("During task")]
    assert len(notes) == 1 and notes[0].startswith("During task with name 'flaky' and id '")


# -- async ---------------------------------------------------------------------------------


def test_async_tasks_retry(api, tmp_path):
    async def aflaky(path, fails):
        n = attempt(path)
        await asyncio.sleep(0)
        if n <= fails:
            raise KeyError(f"attempt {n}")
        return n

    def flaky(path, fails):
        n = attempt(path)
        if n <= fails:
            raise KeyError(f"attempt {n}")
        return n

    policy = fast(api, max_attempts=3, retry_on=KeyError)
    atask, stask = api.task(retry_policy=policy)(aflaky), api.task(retry_policy=policy)(flaky)

    @api.entrypoint()
    async def main(d):
        results = list(await asyncio.gather(atask(f"{d}/a", 2), stask(f"{d}/s", 1)))
        try:
            await atask(f"{d}/x", 9)
        except KeyError as exc:
            results.append(str(exc))
        return results

    assert asyncio.run(main.ainvoke(str(tmp_path))) == [3, 2, "'attempt 3'"]
    assert [attempts(tmp_path / n) for n in "asx"] == [3, 2, 3]


# -- the entrypoint's policy -----------------------------------------------------------------


def test_entrypoint_policy_applies_to_tasks_without_their_own(api, tmp_path):
    plain = api.task(always(ValueError))
    own = api.task(retry_policy=fast(api, max_attempts=1))(always(ValueError))

    @api.entrypoint(retry_policy=fast(api, max_attempts=3, retry_on=ValueError))
    def main(d):
        outcomes = []
        for name, task in (("plain", plain), ("own", own)):
            try:
                task(f"{d}/{name}").result()
            except ValueError as exc:
                outcomes.append(str(exc))
        return outcomes

    assert main.invoke(str(tmp_path)) == ["attempt 3", "attempt 1"]
    assert attempts(tmp_path / "plain") == 3
    assert attempts(tmp_path / "own") == 1


def test_entrypoint_policy_reruns_the_body(api, tmp_path):
    def body(d):
        n = attempt(f"{d}/body")
        if n < 3:
            raise ValueError(f"body attempt {n}")
        return n

    @api.entrypoint(retry_policy=fast(api, max_attempts=3, retry_on=ValueError))
    def main(d):
        return body(d)

    assert main.invoke(str(tmp_path / "")) == 3
    assert attempts(tmp_path / "body") == 3
    os.makedirs(tmp_path / "a")
    assert asyncio.run(main.ainvoke(str(tmp_path / "a"))) == 3  # a sync body under ainvoke
    assert attempts(tmp_path / "a" / "body") == 3

    os.makedirs(tmp_path / "x")

    @api.entrypoint(retry_policy=fast(api, max_attempts=2, retry_on=ValueError))
    def exhausted(d):
        return body(d)

    with pytest.raises(ValueError) as info:
        exhausted.invoke(str(tmp_path / "x"))
    assert info.value.args == ("body attempt 2",)
    assert attempts(tmp_path / "x" / "body") == 2

    os.makedirs(tmp_path / "y")

    @api.entrypoint(retry_policy=fast(api, max_attempts=3, retry_on=KeyError))
    def not_matching(d):
        return body(d)

    with pytest.raises(ValueError) as info:
        not_matching.invoke(str(tmp_path / "y"))
    assert info.value.args == ("body attempt 1",)
    assert attempts(tmp_path / "y" / "body") == 1


def test_async_entrypoint_policy_reruns_the_body_and_its_tasks(api, tmp_path):
    async def task_body(path):
        return attempt(path)

    counted = api.task(task_body)

    @api.entrypoint(retry_policy=fast(api, max_attempts=3, retry_on=ValueError))
    async def main(d):
        n = attempt(f"{d}/body")
        await counted(f"{d}/task")
        if n < 2:
            raise ValueError(f"body attempt {n}")
        return n

    assert asyncio.run(main.ainvoke(str(tmp_path))) == 2
    assert (attempts(tmp_path / "body"), attempts(tmp_path / "task")) == (2, 2)


def test_body_retry_reruns_the_task_calls_of_the_failed_attempt(api, tmp_path):
    failing = api.task(always(ValueError))

    @api.entrypoint(retry_policy=fast(api, max_attempts=2, retry_on=ValueError))
    def main(d):
        attempt(f"{d}/body")
        return failing(f"{d}/task").result()

    with pytest.raises(ValueError) as info:
        main.invoke(str(tmp_path))
    assert info.value.args == ("attempt 4",)
    # 2 body attempts x 2 attempts of the task (the entrypoint's policy applies to it)
    assert (attempts(tmp_path / "body"), attempts(tmp_path / "task")) == (2, 4)


# -- nested tasks ----------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_nested_tasks_under_the_entrypoints_policy(api, tmp_path, is_async):
    def inner(d):
        n = attempt(f"{d}/inner")
        if n < 3:
            raise KeyError(f"inner attempt {n}")
        return n

    inner_task = api.task(inner)

    if is_async:

        async def outer(d):
            attempt(f"{d}/outer")
            return await inner_task(d) * 10

    else:

        def outer(d):
            attempt(f"{d}/outer")
            return inner_task(d).result() * 10

    outer_task = api.task(outer)

    def entry(max_attempts: int) -> Any:
        policy = fast(api, max_attempts=max_attempts, retry_on=KeyError)
        if is_async:

            @api.entrypoint(retry_policy=policy)
            async def main(d):
                attempt(f"{d}/body")
                return await outer_task(d)

            return lambda d: asyncio.run(main.ainvoke(d))

        @api.entrypoint(retry_policy=policy)
        def main(d):
            attempt(f"{d}/body")
            return outer_task(d).result()

        return main.invoke

    def counts(d):
        return [attempts(d / n) for n in ("inner", "outer", "body")]

    (tmp_path / "4").mkdir()
    assert entry(4)(str(tmp_path / "4")) == 30
    assert counts(tmp_path / "4") == [3, 1, 1]  # the inner task retried on its own
    (tmp_path / "2").mkdir()
    assert entry(2)(str(tmp_path / "2")) == 30
    # inner gave up after 2, failing outer; outer's second attempt called inner again
    assert counts(tmp_path / "2") == [3, 2, 1]


def test_nested_task_with_its_own_policy(api, tmp_path):
    def inner(path):
        n = attempt(path)
        if n < 3:
            raise KeyError(f"attempt {n}")
        return n

    inner_task = api.task(retry_policy=fast(api, max_attempts=4, retry_on=KeyError))(inner)
    outer_task = api.task(lambda path: inner_task(path).result() * 10)

    @api.entrypoint()
    def main(path):
        return outer_task(path).result()

    assert main.invoke(str(tmp_path / "n")) == 30
    assert attempts(tmp_path / "n") == 3


def test_nested_async_task_with_its_own_policy(api, tmp_path):
    async def inner(path):
        n = attempt(path)
        await asyncio.sleep(0)
        if n < 3:
            raise KeyError(f"attempt {n}")
        return n

    inner_task = api.task(retry_policy=fast(api, max_attempts=4, retry_on=KeyError))(inner)

    async def outer(path):
        return await inner_task(path) * 10

    outer_task = api.task(outer)

    @api.entrypoint()
    async def main(path):
        return await outer_task(path)

    assert asyncio.run(main.ainvoke(str(tmp_path / "n"))) == 30
    assert attempts(tmp_path / "n") == 3


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_intervals(api, tmp_path):
    growing = api.RetryPolicy(
        initial_interval=0.1, backoff_factor=2.0, max_attempts=3, jitter=False, retry_on=KeyError
    )
    capped = api.RetryPolicy(
        initial_interval=0.05,
        backoff_factor=10.0,
        max_interval=0.06,
        max_attempts=4,
        jitter=False,
        retry_on=KeyError,
    )
    for name, policy, low, high in [("g", growing, 0.3, 1.5), ("c", capped, 0.17, 1.5)]:
        task = api.task(retry_policy=policy)(always(KeyError))
        started = time.monotonic()
        _, exc = run_one(api, task, str(tmp_path / name))
        elapsed = time.monotonic() - started
        assert type(exc) is KeyError
        # growing: waits 0.1 + 0.2; capped: 0.05 + 0.06 + 0.06 (not 0.05 + 0.5 + 5)
        assert low <= elapsed < high, (name, elapsed)


# -- streaming while retrying ------------------------------------------------------------------


def test_retries_stream_one_task_entry_and_every_attempts_chunks(api, tmp_path):
    writer_of = api.get_stream_writer

    def flaky(path):
        n = attempt(path)
        writer_of()(f"attempt {n}")
        if n < 3:
            raise KeyError(f"attempt {n}")
        return n

    task = api.task(retry_policy=fast(api, max_attempts=3, retry_on=KeyError))(flaky)

    @api.entrypoint()
    def main(path):
        return task(path).result()

    chunks = list(main.stream(str(tmp_path / "s"), stream_mode=["tasks", "custom", "updates"]))
    shapes = [
        (mode, c["name"], "result" in c) if mode == "tasks" else (mode, c) for mode, c in chunks
    ]
    assert shapes == [
        ("tasks", "main", False),
        ("tasks", "flaky", False),
        ("custom", "attempt 1"),
        ("custom", "attempt 2"),
        ("custom", "attempt 3"),
        ("updates", {"flaky": 3}),
        ("tasks", "flaky", True),
        ("updates", {"main": 3}),
        ("tasks", "main", True),
    ]
    flaky_ids = {c["id"] for mode, c in chunks if mode == "tasks" and c["name"] == "flaky"}
    assert len(flaky_ids) == 1
    results = [c for mode, c in chunks if mode == "tasks" and "result" in c]
    assert results[0]["error"] is None and results[0]["result"] == {"__return__": 3}


def test_jitter_adds_a_uniform_0_1_draw(api, tmp_path, monkeypatch):
    import random

    draws = []

    def uniform(a, b):
        draws.append((a, b))
        return 0.3

    monkeypatch.setattr(random, "uniform", uniform)
    jittery = api.RetryPolicy(initial_interval=0.01, max_attempts=2, jitter=True, retry_on=KeyError)
    steady = api.RetryPolicy(initial_interval=0.01, max_attempts=2, jitter=False, retry_on=KeyError)
    for name, policy, low, high, expected_draws in [
        ("j", jittery, 0.3, 1.5, [(0, 1)]),
        ("s", steady, 0.0, 0.25, []),
    ]:
        draws.clear()
        task = api.task(retry_policy=policy)(always(KeyError))
        started = time.monotonic()
        _, exc = run_one(api, task, str(tmp_path / name))
        elapsed = time.monotonic() - started
        assert (type(exc), attempts(tmp_path / name)) == (KeyError, 2)
        assert low <= elapsed < high, (name, elapsed)
        assert draws == expected_draws


@pytest.mark.parametrize("impl", [PROCESS, THREAD])
def test_a_call_in_backoff_does_not_hold_up_its_siblings(impl, tmp_path):
    """paralleltask's promise (API.md: backoff waits never block other tasks), not a
    LangGraph behaviour: LangGraph sleeps out a backoff in the task's thread, and with
    four calls in backoff its sibling waited for them (0.6 s). The inline executor waits
    in the caller's thread by design."""
    api = Api(impl)
    slow_retry = paralleltask.RetryPolicy(initial_interval=0.6, max_attempts=2, jitter=False)
    flaky = api.task(retry_policy=slow_retry)(always(CustomError))
    quick = api.task(lambda x: x)

    @api.entrypoint()
    def main(d):
        started = time.monotonic()
        failing = [flaky(f"{d}/{i}") for i in range(4)]
        time.sleep(0.1)  # let every first attempt fail and go into backoff
        value = quick("sibling").result()
        sibling = time.monotonic() - started
        for f in failing:
            try:
                f.result()
            except CustomError:
                pass
        return value, sibling, time.monotonic() - started

    value, sibling, total = main.invoke(str(tmp_path))
    assert value == "sibling"
    assert sibling < 0.5 <= total, (sibling, total)
    assert [attempts(tmp_path / str(i)) for i in range(4)] == [2, 2, 2, 2]


def test_entrypoint_retry_streams_one_entry_and_each_attempts_chunks(api, tmp_path):
    writer_of = api.get_stream_writer
    flaky = api.task(retry_policy=fast(api, max_attempts=3, retry_on=KeyError))(
        lambda path: attempt(path)
    )

    @api.entrypoint(retry_policy=fast(api, max_attempts=3, retry_on=ValueError))
    def main(d):
        n = attempt(f"{d}/body")
        writer_of()(f"body {n}")
        value = flaky(f"{d}/task{n}").result()
        if n < 2:
            raise ValueError(f"body attempt {n}")
        return value

    chunks = list(main.stream(str(tmp_path), stream_mode=["tasks", "custom", "updates"]))
    shapes = [
        (mode, c["name"], "result" in c) if mode == "tasks" else (mode, c) for mode, c in chunks
    ]
    assert shapes == [
        ("tasks", "main", False),
        ("custom", "body 1"),
        ("tasks", "<lambda>", False),
        ("updates", {"<lambda>": 1}),
        ("tasks", "<lambda>", True),
        ("custom", "body 2"),
        ("tasks", "<lambda>", False),
        ("updates", {"<lambda>": 1}),
        ("tasks", "<lambda>", True),
        ("updates", {"main": 1}),
        ("tasks", "main", True),
    ]
    main_ids = {c["id"] for mode, c in chunks if mode == "tasks" and c["name"] == "main"}
    task_ids = {c["id"] for mode, c in chunks if mode == "tasks" and c["name"] == "<lambda>"}
    assert len(main_ids) == 1 and len(task_ids) == 2


def test_retry_on_an_exception_class_defined_in_the_test(api, tmp_path):
    class LocalError(Exception):
        pass

    def flaky(path):
        n = attempt(path)
        if n < 3:
            raise LocalError(f"attempt {n}")
        return n

    task = api.task(retry_policy=fast(api, max_attempts=3, retry_on=LocalError))(flaky)
    assert run_one(api, task, str(tmp_path / "l")) == (3, None)
    listed = api.task(retry_policy=fast(api, max_attempts=2, retry_on=[LocalError]))(flaky)
    _, exc = run_one(api, listed, str(tmp_path / "m"))
    assert isinstance(exc, LocalError) and attempts(tmp_path / "m") == 2


@pytest.mark.parametrize("impl", [LANGGRAPH, THREAD, INLINE])
@pytest.mark.parametrize("where", ["task", "entrypoint"])
def test_a_retry_on_callable_that_does_not_pickle(impl, tmp_path, where):
    """Retries are decided in the parent (API.md); the process pool's case runs in a
    fresh interpreter below (it breaks the pool it runs on)."""
    if impl == LANGGRAPH:
        pytest.importorskip("langgraph.func")
    main = unpicklable_policy_program(Api(impl), tmp_path, where)
    assert main.invoke(str(tmp_path)) == ("attempt 3", 42)
    assert attempts(tmp_path / "k") == 3


UNPICKLABLE_POLICY_SCRIPT = """
import concurrent.futures as cf, json, os, sys
sys.path.insert(0, os.getcwd())
from paralleltask import ProcessExecutor
from tests.support.impls import PROCESS, EXECUTORS, Api
from tests.support.retry_programs import unpicklable_policy_program

EXECUTORS[PROCESS] = ProcessExecutor(max_workers=1)
where, d = sys.argv[1], sys.argv[2]
api = Api(PROCESS)
main = unpicklable_policy_program(api, d, where)
report = {}
try:
    report["result"] = list(main.invoke(d))
except Exception as exc:
    report["result"] = f"{type(exc).__name__}: {exc}"

@api.entrypoint()
def later(x):
    return api.task(lambda y: y + 1)(x).result()

pool = cf.ThreadPoolExecutor(1)  # no `with`: its exit would wait for a hung call
try:
    report["later"] = pool.submit(later.invoke, 1).result(timeout=4)
except cf.TimeoutError:
    report["later"] = "hung"
print(json.dumps(report), flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("where", ["task", "entrypoint"])
def test_a_retry_on_callable_that_does_not_pickle_on_the_process_pool(tmp_path, where):
    """A documented difference: LangGraph never pickles a policy; on the process pool a
    policy travels with the task (or the run) to workers, so one that will not pickle
    fails the call at the call site with SerializationError, and the pool keeps working
    (a single worker, so a worker lost to the failure would hang the next call)."""
    done = subprocess.run(
        [sys.executable, "-c", UNPICKLABLE_POLICY_SCRIPT, where, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["result"].startswith("SerializationError: ")
    assert "cannot pickle" in report["result"]
    assert report["later"] == 2


# -- paralleltask only: LangGraph's RetryPolicy objects, worker crashes -------------------------


@pytest.fixture(params=PARALLELTASK)
def pt_executor(request):
    return request.param


def _pt_entrypoint(impl: str, **kwargs: Any) -> Any:
    if EXECUTORS[impl] is not None:
        kwargs["executor"] = EXECUTORS[impl]
    return paralleltask.entrypoint(**kwargs)


def test_langgraphs_retry_policy_objects_are_accepted(pt_executor, lg_types, tmp_path, fake_http):
    """A half-migrated program: langgraph.types.RetryPolicy in paralleltask's task()."""
    lg_policy = lg_types.RetryPolicy(max_attempts=3, retry_on=KeyError, **FAST)
    lg_default = lg_types.RetryPolicy(**FAST)  # LangGraph's own default_retry_on
    single = paralleltask.task(retry_policy=lg_policy)(always(KeyError))
    listed = paralleltask.task(
        retry_policy=[lg_types.RetryPolicy(max_attempts=2, retry_on=ValueError, **FAST), lg_policy]
    )(always(KeyError))
    by_default = paralleltask.task(retry_policy=lg_default)(always(ConnectionError))
    not_retried = paralleltask.task(retry_policy=lg_default)(always(ValueError))
    plain = paralleltask.task(always(KeyError))

    @_pt_entrypoint(pt_executor)
    def main(d):
        outcomes = []
        for name, task in [
            ("single", single),
            ("listed", listed),
            ("default", by_default),
            ("final", not_retried),
        ]:
            try:
                task(f"{d}/{name}").result()
            except Exception as exc:
                outcomes.append((type(exc).__name__, str(exc).strip("'")))
        return outcomes

    assert main.invoke(str(tmp_path)) == [
        ("KeyError", "attempt 3"),
        ("KeyError", "attempt 3"),
        ("ConnectionError", "attempt 3"),
        ("ValueError", "attempt 1"),
    ]

    @_pt_entrypoint(pt_executor, retry_policy=lg_types.RetryPolicy(max_attempts=2, **FAST))
    def with_entry_policy(d):
        attempt(f"{d}/body")
        try:
            return plain(f"{d}/plain").result()
        except KeyError:
            raise CustomError("body") from None

    with pytest.raises(CustomError):
        with_entry_policy.invoke(str(tmp_path))
    # LangGraph's default_retry_on: KeyError final for the task, CustomError retried
    assert (attempts(tmp_path / "body"), attempts(tmp_path / "plain")) == (2, 2)


def _crash_once(path):
    if attempt(path) == 1:
        os._exit(3)
    return "survived"


def test_worker_crash_is_retried_by_the_default_policy(tmp_path, fake_http):
    """Process pool only (os._exit would end a thread or inline run's test process)."""
    ProcessExecutor().start()
    retried = paralleltask.task(retry_policy=paralleltask.RetryPolicy(**FAST))(_crash_once)
    unretried = paralleltask.task(_crash_once)

    @paralleltask.entrypoint()
    def main(d):
        value = retried(f"{d}/r").result()
        try:
            unretried(f"{d}/u").result()
        except WorkerCrashedError as exc:
            return value, exc.exitcode
        return value, None

    assert main.invoke(str(tmp_path)) == ("survived", 3)
    assert (attempts(tmp_path / "r"), attempts(tmp_path / "u")) == (2, 1)
