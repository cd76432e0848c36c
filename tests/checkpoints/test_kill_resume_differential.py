"""kill -9 and resume, on LangGraph with its SQLite saver and on paralleltask with LMDB:
the same program, the same final result; paralleltask re-runs no call that had
finished (durability="sync"), concurrent calls included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import ROOT, SCRIPTS

SCRIPT = os.path.join(SCRIPTS, "kill_resume_diff.py")
N = 8
KILL_AFTER = 3  # calls whose work is done


def ended(folder) -> list[int]:
    return [int(name.split("-")[1]) for name in os.listdir(folder) if name.startswith("end-")]


def started(folder) -> list[int]:
    return [int(name.split("-")[1]) for name in os.listdir(folder) if name.startswith("start-")]


def command(impl, store, mode, shape, folder):
    return [sys.executable, SCRIPT, impl, str(store), mode, shape, str(N), str(folder)]


def environment():
    return {**os.environ, "PYTHONPATH": ROOT}


def kill_mid_run(impl, store, shape, folder):
    child = subprocess.Popen(
        command(impl, store, "run", shape, folder),
        env=environment(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(ended(folder)) < KILL_AFTER:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the job did not get going"
        time.sleep(0.005)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(10)
    return set(ended(folder))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", ["seq", "par"])
@pytest.mark.parametrize("impl", ["langgraph", "paralleltask"])
def test_kill_9_then_resume(tmp_path, impl, shape):
    if impl == "langgraph":
        pytest.importorskip("langgraph.checkpoint.sqlite")
    store = tmp_path / ("store.sqlite" if impl == "langgraph" else "store")
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    finished_before_kill = kill_mid_run(impl, store, shape, before)
    resumed = subprocess.run(
        command(impl, store, "resume", shape, after),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == [i * i for i in range(N)]
    rerun_finished = finished_before_kill & set(started(after))
    if impl == "paralleltask" or shape == "seq":
        # durability="sync": a finished call's result is committed before its future
        # resolves; only a call whose commit was under way at the kill may run again.
        assert len(rerun_finished) <= 1, sorted(rerun_finished)
    # LangGraph 1.2.22 with its SQLite saver re-runs every concurrent call that had
    # finished before the kill (measured: 3 of 3); it is held to the same result only.
    print(
        f"{impl} {shape}: finished before kill {sorted(finished_before_kill)}, "
        f"re-run {sorted(rerun_finished)}"
    )
