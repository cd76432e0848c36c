"""Issue 13: durable means durable, a run reads its own cache entries, and runs of
many processes on one thread keep every checkpoint.

- A commit that fails (disk full, an I/O error, a map that cannot grow: injected into
  ``LMDBStore._write_batch``, and for real on a 2 MB tmpfs where the machine lets us
  mount one) is never a warning alone: under ``durability="sync"`` the call fails with
  a ``StoreError`` holding its value; under ``"async"``/``"exit"`` (and for cache
  entries) the invoke raises one at its end, the run's value attached.
- A cached call made twice in a row in one invoke runs once with LMDBStore too.
- Two processes x 200 runs on one thread keep all 800 checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import lmdb
import pytest

from paralleltask import (
    CachePolicy,
    InlineExecutor,
    LMDBStore,
    MemoryStore,
    entrypoint,
    serde,
    task,
)
from paralleltask._checkpoint import BODY, OUTCOME
from paralleltask.errors import StoreError
from paralleltask.stores import _lmdbseqs as lmdb_seqs
from paralleltask.stores import _lmdbwriter as lmdb_writer
from paralleltask.stores import lmdb as lmdb_store
from paralleltask.stores.base import MISS
from tests.support.processes import finish, script

REAL_WRITE = lmdb_store.LMDBStore._write_batch


@task
def square(x):
    return x * x


@task
def blob(size, i):
    return bytes([i % 256]) * size


@task(cache_policy=CachePolicy())
def counted(folder, x):
    open(os.path.join(folder, f"ran-{x}-{uuid.uuid4().hex}"), "w").close()
    return x + 1


def runs_of(folder, x):
    return sum(name.startswith(f"ran-{x}-") for name in os.listdir(folder))


def fail_commits(monkeypatch, db, error=lmdb.DiskError, only=None):
    """Make every commit holding a put to ``db`` fail (``only``: a predicate on the
    batch narrows it); returns the list of failed batch sizes."""
    failed = []

    def failing(self, batch):
        if any(item[0] == db for item in batch) and (only is None or only(batch)):
            failed.append(len(batch))
            raise error("mdb_txn_commit: No space left on device (injected)")
        return REAL_WRITE(self, batch)

    monkeypatch.setattr(lmdb_store.LMDBStore, "_write_batch", failing)
    return failed


def holds_a_call_result(batch):
    """A task call's result (key: thread 16 + seq 8 + "o" + slot 4), not the body's."""
    return any(item[0] == b"writes" and len(item[1]) == 29 for item in batch)


def map_cannot_grow(monkeypatch):
    """A full map whose growth fails (set_mapsize refused, as on a full disk)."""

    def full(self, batch):
        if holds_a_call_result(batch):
            handle = self._handle()
            with handle.lock:

                def write():
                    raise lmdb.MapFullError("mdb_put: MDB_MAP_FULL (injected)")

                def refuse(size):
                    raise lmdb.Error(f"mdb_env_set_mapsize: No space left on device ({size})")

                env = handle.env

                class Env:  # the handle's env, whose growth is refused
                    def __getattr__(self, name):
                        return refuse if name == "set_mapsize" else getattr(env, name)

                handle.env = Env()
                try:
                    return self._retrying(handle, write)
                finally:
                    handle.env = env
        return REAL_WRITE(self, batch)

    monkeypatch.setattr(lmdb_store.LMDBStore, "_write_batch", full)


EXECUTORS = {"pool": None, "inline": InlineExecutor()}


def squares_entrypoint(store, executor):
    @entrypoint(checkpointer=store, executor=executor)
    def squares(n):
        values = []
        for future in [square(i) for i in range(n)]:
            try:
                values.append(future.result())
            except StoreError as error:
                values.append(("lost", error))
        return values

    return squares


def thread(name):
    return {"configurable": {"thread_id": name}}


# -- 1. a failed commit is an error, never a warning alone ---------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["pool", "inline"])
@pytest.mark.parametrize("how", ["disk-full", "map-cannot-grow"])
def test_a_failed_sync_commit_fails_that_call_with_a_store_error_holding_its_value(
    tmp_path, monkeypatch, where, how
):
    store = LMDBStore(tmp_path / "store")
    if how == "disk-full":
        fail_commits(monkeypatch, b"writes", only=holds_a_call_result)
    else:
        map_cannot_grow(monkeypatch)
    squares = squares_entrypoint(store, EXECUTORS[where])
    values = squares.invoke(3, thread("t"), durability="sync")
    assert [v[0] for v in values] == ["lost"] * 3
    for i, (_, error) in enumerate(values):
        assert error.value == i * i
        assert error.path == store.path
        assert store.path in str(error) and "square" in str(error)
        assert ("No space left" in str(error)) and isinstance(error.__cause__, lmdb.Error)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["pool", "inline"])
@pytest.mark.parametrize("durability", ["async", "exit"])
def test_a_failed_commit_under_async_or_exit_fails_the_invoke_at_its_end_with_the_value(
    tmp_path, monkeypatch, where, durability
):
    store = LMDBStore(tmp_path / "store")
    # "exit" writes one thing when a run succeeds: its loop checkpoint.
    fail_commits(monkeypatch, b"writes" if durability == "async" else b"checkpoints")
    squares = squares_entrypoint(store, EXECUTORS[where])
    with pytest.raises(StoreError, match="not stored") as raised:
        squares.invoke(3, thread("t"), durability=durability)
    assert raised.value.value == [0, 1, 4]  # the run's value: nothing computed is lost
    assert raised.value.path == store.path
    assert store.path in str(raised.value) and "No space left" in str(raised.value)
    if durability == "async":  # each call's result is named, and the body's
        assert "the result of 'square'" in str(raised.value)
        assert "the result of 'squares'" in str(raised.value)
    else:
        assert "the loop checkpoint of thread 't'" in str(raised.value)
    monkeypatch.setattr(lmdb_store.LMDBStore, "_write_batch", REAL_WRITE)
    assert squares.invoke(2, thread("t"), durability=durability) == [0, 1]  # serves on


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["pool", "inline"])
def test_a_cache_entry_that_cannot_be_written_fails_the_run_at_its_end(
    tmp_path, monkeypatch, where
):
    fail_commits(monkeypatch, b"cache")

    @entrypoint(cache=LMDBStore(tmp_path / "store"), executor=EXECUTORS[where])
    def main(n):
        return [counted(str(tmp_path), i).result() for i in range(n)]

    with pytest.raises(StoreError, match=r"cache entry of 'counted'") as raised:
        main.invoke(2)
    assert raised.value.value == [1, 2]


@pytest.mark.timeout(60)
def test_concurrent_runs_on_one_store_each_learn_only_of_their_own_failed_puts(
    tmp_path, monkeypatch
):
    # The poisoned run's entry fails every commit it is in; batches it shares with the
    # other run's entries are written again put by put, so the other run loses nothing.
    store = LMDBStore(tmp_path / "store")
    folder = str(tmp_path)
    poisoned = []

    def holds_poison(batch):
        return any(item[2] in poisoned for item in batch)

    fail_commits(monkeypatch, b"cache", only=holds_poison)
    real_put = lmdb_writer.Writer.put_cache

    def put_cache(self, key, data, expiry, blob, on_commit):
        if blob == counted_blob(1001):
            poisoned.append(data)
        return real_put(self, key, data, expiry, blob, on_commit)

    monkeypatch.setattr(lmdb_writer.Writer, "put_cache", put_cache)

    @entrypoint(cache=store, executor=InlineExecutor())
    def main(xs):
        return [counted(folder, x).result() for x in xs]

    outcomes = {}

    def run(name, xs):
        try:
            outcomes[name] = main.invoke(xs)
        except StoreError as error:
            outcomes[name] = error

    runs = [
        threading.Thread(target=run, args=("innocent", list(range(200)))),
        threading.Thread(target=run, args=("poisoned", [*range(300, 400), 1000])),
    ]
    for each in runs:
        each.start()
    for each in runs:
        each.join()
    assert outcomes["innocent"] == list(range(1, 201))
    assert isinstance(outcomes["poisoned"], StoreError)
    assert outcomes["poisoned"].value == [*range(301, 401), 1001]
    assert str(outcomes["poisoned"]).startswith("1 put(s)")


def counted_blob(value):
    return serde.dumps(value)


@pytest.mark.timeout(60)
def test_a_failed_batch_does_not_poison_later_batches_and_a_raising_callback_neither(
    tmp_path, monkeypatch
):
    store = LMDBStore(tmp_path / "store")
    poison = []

    def holds_the_first_write(batch):  # the first write of all, in every commit it is in
        writes = [item[2] for item in batch if item[0] == b"writes"]
        if not poison:
            poison.extend(writes[:1])
        return any(data is poison[0] for data in writes)

    fail_commits(monkeypatch, b"writes", only=holds_the_first_write)
    squares = squares_entrypoint(store, InlineExecutor())
    with pytest.raises(StoreError):
        squares.invoke(1, thread("t"), durability="async")
    store.write_put("t", 99, b"x", ("boom",), on_commit=lambda error: 1 / 0)
    store.flush()  # the writer printed the ZeroDivisionError, and serves on:
    assert squares.invoke(3, thread("t"), durability="async") == [0, 1, 4]
    assert squares.get_state(thread("t")).values == [0, 1, 4]


# -- a real full disk: a 2 MB tmpfs -------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot run mount here")
    if done.returncode != 0:
        pytest.skip(f"mount of a tmpfs refused: {done.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["pool", "inline"])
@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_a_really_full_disk_is_a_store_error_in_every_durability(tiny_disk, where, durability):
    store = LMDBStore(tiny_disk / "store", map_size=1 << 20)
    size = 200_000  # 20 of them: twice what the disk holds

    @entrypoint(checkpointer=store, executor=EXECUTORS[where])
    def blobs(n):
        values = []
        for i in range(n):
            try:
                values.append(blob(size, i).result())
            except StoreError as error:  # "sync": that call's result was not stored
                assert len(error.value) == size and error.path == store.path
                values.append(error.value)
        return values  # 4 MB: its loop record cannot be stored either

    with pytest.raises(StoreError) as raised:
        blobs.invoke(20, thread("t"), durability=durability)
    assert raised.value.value == [bytes([i]) * size for i in range(20)]
    assert raised.value.path == store.path and store.path in str(raised.value)


# -- kill -9 after "sync": no resolved result is recomputed ----------------------------------


def started(folder):
    return [int(name.split("-")[1]) for name in os.listdir(folder) if name.startswith("start-")]


@pytest.mark.timeout(120)
def test_after_kill_9_under_sync_no_result_whose_future_resolved_is_recomputed(tmp_path):
    store, run1, run2 = tmp_path / "store", tmp_path / "run1", tmp_path / "run2"
    run1.mkdir()
    run2.mkdir()
    n = 12
    job = script("failing_disk_job.py", store, "t", "run", n, run1)
    deadline = time.monotonic() + 60
    while not (run1 / "looped").exists():
        if job.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the job did not loop: {finish(job, timeout=60)}")
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    finish(job, timeout=60)
    names = os.listdir(run1)
    resolved = {int(name.split("-")[1]) for name in names if name.startswith("resolved-")}
    assert 0 < len(resolved) < n  # every other commit failed: those calls did not resolve
    resume = script("failing_disk_job.py", store, "t", "resume", n, run2)
    out, err = finish(resume, timeout=60)
    assert resume.returncode == 0, err
    assert json.loads(out)["result"] == [i * i + 1 for i in range(n)]
    rerun = set(started(run2))
    assert not resolved & rerun, f"resolved, yet recomputed: {sorted(resolved & rerun)}"
    assert rerun == set(range(n)) - resolved  # and what was not stored runs again


# -- 2. a run reads its own cache entries at once -------------------------------------------


def slow_writer(monkeypatch, seconds=0.2):
    """Commits that take a while: a put stays queued while the body goes on."""

    def slow(self, batch):
        time.sleep(seconds)
        return REAL_WRITE(self, batch)

    monkeypatch.setattr(lmdb_store.LMDBStore, "_write_batch", slow)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["pool", "inline"])
def test_the_same_cached_call_twice_in_a_row_in_one_invoke_runs_once(tmp_path, monkeypatch, where):
    slow_writer(monkeypatch)
    folder = str(tmp_path)

    @entrypoint(cache=LMDBStore(tmp_path / "store"), executor=EXECUTORS[where])
    def main(x):
        return [counted(folder, x).result(), counted(folder, x).result()]

    assert main.invoke(5) == [6, 6]
    assert runs_of(folder, 5) == 1  # as with MemoryStore and LangGraph's caches


@pytest.mark.timeout(60)
def test_a_pending_entry_reads_as_a_copy_and_one_that_failed_is_a_miss(tmp_path, monkeypatch):
    store = LMDBStore(tmp_path / "store")
    slow_writer(monkeypatch, 0.1)
    value = {"list": [1, 2]}
    store.cache_put(b"k" * 32, value, None)
    seen = store.cache_get(b"k" * 32)
    assert seen == value and seen is not value  # a copy, as a committed entry's read
    store.flush()
    assert store.cache_get(b"k" * 32) == value  # committed: read from the database
    failed = fail_commits(monkeypatch, b"cache")
    errors = []
    store.cache_put(b"j" * 32, 1, None, on_commit=errors.append)
    store.flush()
    assert failed and isinstance(errors[0], StoreError)
    assert store.cache_get(b"j" * 32) is MISS  # not stored: the next lookup recomputes


# -- 3. runs of two processes on one thread keep every checkpoint ----------------------------


@pytest.mark.timeout(180)
def test_two_processes_200_runs_each_on_one_thread_keep_every_checkpoint(tmp_path, monkeypatch):
    store = tmp_path / "store"
    LMDBStore(store)  # created before both open it
    runs = 200
    jobs = [script("one_thread_runs.py", store, "shared", tag, runs) for tag in "ab"]
    for job in jobs:
        out, err = finish(job, timeout=150)
        assert job.returncode == 0, err
        assert json.loads(out) == {"ok": runs}

    @entrypoint(checkpointer=LMDBStore(store))
    def main(x):
        return x

    reader = LMDBStore(store)
    history = list(main.get_state_history(thread("shared")))
    assert len(history) == 2 * 2 * runs  # an input and a loop record per run
    ids = [state.config["configurable"]["checkpoint_id"] for state in history]
    assert len(set(ids)) == len(ids)
    records = list(reader.checkpoint_history("shared"))
    inputs = [r for r in records if r["source"] == "input"]
    assert sorted(tuple(r["input"]) for r in inputs) == sorted(
        (tag, i) for tag in "ab" for i in range(runs)
    )
    for record in inputs:  # each run's writes are under its own seq: none mixed
        tag, i = record["input"]
        outcome = reader.write_get("shared", record["seq"], OUTCOME + BODY)
        assert serde.loads(outcome[2]) == [tag, 2 * i]
    loops = [r for r in records if r["source"] == "loop"]
    assert sorted(tuple(r["values"]) for r in loops) == sorted(
        (tag, 2 * i) for tag in "ab" for i in range(runs)
    )
    # After a reboot the counters start afresh (a folder per boot): the next seq still
    # comes past the thread's last record, and the old boot's folder is dropped.
    last = records[0]["seq"]
    monkeypatch.setattr(lmdb_seqs, "_boot_id", lambda: "0" * 32)
    monkeypatch.setattr(lmdb_seqs, "_seq_envs", {})
    again = entrypoint(checkpointer=reader, executor=InlineExecutor())(lambda x: x)
    assert again.invoke(["c", 0], thread("shared")) == ["c", 0]
    seqs = [r["seq"] for r in reader.checkpoint_history("shared")]
    assert seqs[:3] == [last + 2, last + 1, last]
    assert [name for name in os.listdir(store) if name.startswith("seqs")] == ["seqs-" + "0" * 32]


def test_memory_store_numbers_the_checkpoints_of_runs_at_once_on_one_thread():
    store = MemoryStore()
    together = threading.Barrier(4)

    @entrypoint(checkpointer=store, executor=InlineExecutor())
    def main(x):
        together.wait(timeout=10)  # all four runs started from the same latest record
        return square(x).result()

    def runs(offset):
        for i in range(10):
            assert main.invoke(offset + i, thread("t")) == (offset + i) ** 2

    workers = [threading.Thread(target=runs, args=(k * 100,)) for k in range(4)]
    for each in workers:
        each.start()
    for each in workers:
        each.join()
    assert len(list(store.checkpoint_history("t"))) == 4 * 10 * 2


@pytest.mark.parametrize("kind", ["lmdb", "memory"])
def test_a_record_put_without_the_counter_is_never_overwritten(tmp_path, kind):
    """A record written past the counter (checkpoint_put, a data.mdb restored from a
    newer copy, an older paralleltask) pushes the next seq past it."""
    store = LMDBStore(tmp_path / "store") if kind == "lmdb" else MemoryStore()
    for _ in range(3):
        store.checkpoint_add("t", lambda seq: {"seq": seq, "values": "counted"})
    store.checkpoint_put("t", {"seq": 10, "values": "put"})
    store.flush()
    added = store.checkpoint_add("t", lambda seq: {"seq": seq, "values": "after"})
    store.flush()
    assert added["seq"] == 11
    assert store.checkpoint_get("t")["values"] == "after"
    assert store.checkpoint_get("t", 10)["values"] == "put"
