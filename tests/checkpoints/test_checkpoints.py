"""Checkpoints beyond the differential suite: LMDB as the checkpointer, durability,
replay properties, half-migrated Commands, and the errors of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paralleltask import (
    Command,
    InlineExecutor,
    LMDBStore,
    MemoryStore,
    entrypoint,
    interrupt,
    task,
)
from paralleltask._checkpoint import OUTCOME, call_slot
from tests.support import ROOT
from tests.support.checkpoint_job import executions, record, squares_job


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_an_lmdb_checkpointer_resumes_in_a_new_process(tmp_path, durability):
    """A run fails in one process; another process resumes it from the LMDB file."""
    folder = tmp_path / "runs"
    folder.mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        from paralleltask import LMDBStore
        from tests.support.checkpoint_job import squares_job
        job = squares_job(LMDBStore({str(tmp_path / "store")!r}))
        config = {{"configurable": {{"thread_id": "t"}}}}
        given = None if sys.argv[1] == "resume" else ({str(folder)!r}, list(range(6)), 3)
        try:
            print(job.invoke(given, config, durability={durability!r}))
        except ValueError as exc:
            print("failed:", exc)
        """
    )

    def run(mode):
        env = {**os.environ, "PYTHONPATH": ROOT}
        out = subprocess.run(
            [sys.executable, "-c", script, mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run("first") == "failed: failing at 3"
    (folder / "healed").touch()
    assert run("resume") == str([x * x for x in range(6)])
    assert executions(folder, 3) == 2  # the failed call ran again
    assert all(executions(folder, x) == 1 for x in (0, 1, 2, 4, 5))  # the rest replayed


@task
def noted(x):
    return x + 1


def test_durability_sync_stores_a_result_before_its_future_resolves(tmp_path):
    store = LMDBStore(tmp_path / "store")
    seen = []

    @entrypoint(checkpointer=store)
    def main(x):
        value = noted(x).result()
        # read from a fresh transaction: only what is committed is visible
        record = store.checkpoint_get("sync")
        seen.append(store.write_get("sync", record["seq"], OUTCOME + call_slot(0)))
        return value

    assert main.invoke(1, {"configurable": {"thread_id": "sync"}}, durability="sync") == 2
    assert seen[0][:2] == ("ok", "noted")


def test_durability_exit_writes_nothing_before_the_end(tmp_path):
    store = LMDBStore(tmp_path / "store")
    seen = []

    @entrypoint(checkpointer=store)
    def main(x):
        value = noted(x).result()
        seen.append(store.checkpoint_get("exit"))
        return value

    config = {"configurable": {"thread_id": "exit"}}
    assert main.invoke(1, config, durability="exit") == 2
    assert seen == [None]
    assert main.get_state(config).values == 2


@settings(max_examples=25, deadline=None)
@given(
    xs=st.lists(st.integers(-50, 50), min_size=1, max_size=12),
    data=st.data(),
)
def test_replay_after_a_failure_equals_a_fresh_run(tmp_path_factory, xs, data):
    """Property: fail at any call, resume: the same result as a run that never failed,
    and no call that had finished runs again."""
    folder = tmp_path_factory.mktemp("replay")
    fail_at = data.draw(st.sampled_from(xs))
    job = squares_job(MemoryStore())
    config = {"configurable": {"thread_id": "p"}}
    with pytest.raises(ValueError):
        job.invoke((str(folder), xs, fail_at), config)
    (folder / "healed").touch()
    assert job.invoke(None, config) == [x * x for x in xs]
    fresh_folder = tmp_path_factory.mktemp("fresh")
    (fresh_folder / "healed").touch()
    fresh = squares_job(MemoryStore()).invoke((str(fresh_folder), xs, fail_at), config)
    assert fresh == [x * x for x in xs]
    for x in set(xs):  # finished calls ran once; the failing ones once more on resume
        assert executions(folder, x) == xs.count(x) * (2 if x == fail_at else 1)


def test_a_langgraph_command_resumes_a_paralleltask_run():
    types = pytest.importorskip("langgraph.types")

    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def ask(x):
        return interrupt("name?") + x

    config = {"configurable": {"thread_id": "half-migrated"}}
    assert "__interrupt__" in ask.invoke("!", config)
    assert ask.invoke(types.Command(resume="Ada"), config) == "Ada!"


def test_command_with_update_or_goto_is_refused_clearly():
    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def ask(x):
        return interrupt("q")

    config = {"configurable": {"thread_id": "c"}}
    ask.invoke(1, config)
    with pytest.raises(ValueError, match="resume= only"):
        ask.invoke(Command(update={"a": 1}), config)
    with pytest.raises(ValueError, match="no nodes to go to"):
        ask.invoke(Command(goto="elsewhere"), config)


def test_invoke_none_on_an_empty_thread_is_an_empty_input_error():
    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def main(x):
        return x

    with pytest.raises(Exception, match="Received no input for __start__") as caught:
        main.invoke(None, {"configurable": {"thread_id": "empty"}})
    assert type(caught.value).__name__ == "EmptyInputError"
    assert not isinstance(caught.value, ValueError)  # LangGraph's derives from Exception


def test_a_checkpoint_id_in_invoke_is_refused_not_ignored():
    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def main(x):
        return x

    config = {"configurable": {"thread_id": "t", "checkpoint_id": "x"}}
    with pytest.raises(NotImplementedError, match="time travel"):
        main.invoke(1, config)
    thread = {"configurable": {"thread_id": "t"}}
    main.invoke(1, thread)
    older = main.get_state(thread).config
    main.invoke(2, thread)
    with pytest.raises(NotImplementedError, match="time travel"):
        main.invoke(3, older)
    # The latest checkpoint's own config (a state's, say) is no travel: it runs.
    assert main.invoke(3, main.get_state(thread).config) == 3
    assert main.get_state(thread).values == 3


def test_get_state_of_a_given_checkpoint_id():
    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def main(x):
        return x * 2

    config = {"configurable": {"thread_id": "t"}}
    main.invoke(1, config)
    first = main.get_state(config).config
    main.invoke(5, config)
    assert main.get_state(config).values == 10
    assert main.get_state(first).values == 2
    history = list(main.get_state_history(config, before=first))
    assert [s.metadata["step"] for s in history] == [-1]


@task
def nested_asker(x):
    return inner_asker(x).result()


@task
def inner_asker(x):
    return interrupt("inner?")


def test_interrupt_in_a_task_called_by_a_task_fails_clearly():
    @entrypoint(checkpointer=MemoryStore())
    def main(x):
        return nested_asker(x).result()

    with pytest.raises(RuntimeError, match="another task called"):
        main.invoke(1, {"configurable": {"thread_id": "n"}})


def test_interrupt_outside_a_run_is_langgraphs_error():
    with pytest.raises(RuntimeError, match="outside of a runnable context"):
        interrupt("q")


@task
def inner_square(folder, x):
    record(folder, f"inner{x}")
    return x * x


@task
def outer_sum(folder, xs):
    total = sum(f.result() for f in [inner_square(folder, x) for x in xs])
    if not os.path.exists(os.path.join(folder, "healed")):
        raise ValueError("outer fails after its nested calls finished")
    return total


@pytest.mark.parametrize("executor", [None, InlineExecutor()], ids=["process", "inline"])
def test_a_rerun_outer_call_replays_its_finished_nested_calls(tmp_path, executor):
    """Nested calls have slots under their caller's: a resumed run re-runs the failed
    outer call, and its nested calls that had finished are answered from the store
    (in a worker, by asking the parent)."""

    @entrypoint(checkpointer=LMDBStore(tmp_path / "store"), executor=executor)
    def main(job):
        folder, xs = job
        return outer_sum(folder, xs).result()

    config = {"configurable": {"thread_id": "nested"}}
    with pytest.raises(ValueError, match="outer fails"):
        main.invoke((str(tmp_path), [1, 2, 3]), config)
    (tmp_path / "healed").touch()
    assert main.invoke(None, config) == 14
    assert [executions(tmp_path, f"inner{x}") for x in (1, 2, 3)] == [1, 1, 1]


def test_a_failing_disk_loses_no_result_and_hangs_nothing(tmp_path, monkeypatch):
    """Disk full during a commit of results (injected): the run raises StoreError
    naming the store and what was not written, with every result in its value (never a
    warning alone), and the store keeps working once the disk has room again."""
    import lmdb

    from paralleltask.errors import StoreError
    from paralleltask.stores import lmdb as lmdb_store

    store = LMDBStore(tmp_path / "store")
    real_write = lmdb_store.LMDBStore._write_batch
    failures, first_write = [], []

    def full_disk(self, batch):  # the first result written fails in every commit it is in
        writes = [item[2] for item in batch if item[0] == b"writes"]
        if not first_write:
            first_write.extend(writes[:1])
        if any(data is first_write[0] for data in writes):
            failures.append(len(batch))
            raise lmdb.DiskError("mdb_txn_commit: No space left on device")
        return real_write(self, batch)

    monkeypatch.setattr(lmdb_store.LMDBStore, "_write_batch", full_disk)
    job = squares_job(store)
    config = {"configurable": {"thread_id": "disk"}}
    (tmp_path / "healed").touch()
    with pytest.raises(StoreError, match=r"not stored.*No space left") as raised:
        job.invoke((str(tmp_path), [1, 2, 3], -1), config)
    assert raised.value.value == [1, 4, 9]
    assert raised.value.path == store.path
    assert failures
    assert job.invoke((str(tmp_path), [4], -1), config) == [16]
    assert job.get_state(config).values == [16]


def test_update_state_from_a_checkpoint_the_thread_lacks_is_refused_and_writes_nothing():
    @entrypoint(checkpointer=MemoryStore(), executor=InlineExecutor())
    def main(x):
        return x

    thread = {"configurable": {"thread_id": "t"}}
    main.invoke(1, thread)
    before = list(main.get_state_history(thread))
    other = {"configurable": {"thread_id": "other"}}
    main.invoke(2, other)
    foreign = main.get_state(other).config["configurable"]["checkpoint_id"]
    for checkpoint_id in (foreign, "not-a-checkpoint-id"):
        config = {"configurable": {"thread_id": "t", "checkpoint_id": checkpoint_id}}
        with pytest.raises(ValueError, match="checkpoint"):
            main.update_state(config, 5)
    assert list(main.get_state_history(thread)) == before


def test_records_stored_before_the_serde_module_was_private_still_load():
    """A failed call's exception in a store written by an earlier version references
    ``paralleltask.serde._rebuild_exception``: it must load (and rebuild the error)."""
    import pickle

    from paralleltask import _serde

    class Reduced:
        def __reduce__(self):
            return _serde._rebuild_exception, (ValueError, ("kept",))

    today = pickle.dumps(Reduced(), protocol=0)  # module names as text, to edit
    assert b"paralleltask._serde\n_rebuild_exception" in today
    legacy = today.replace(b"paralleltask._serde\n", b"paralleltask.serde\n")
    rebuilt = pickle.loads(legacy)
    assert type(rebuilt) is ValueError and rebuilt.args == ("kept",)
