"""Real scripts in real processes: no main guard, Ctrl-C, no worker left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.support import ROOT, SCRIPTS
from tests.support.processes import sigint_not_ignored, tagged_pids, wait_gone

pytestmark = pytest.mark.slow


def python(script, *args, tag="", **kwargs):
    """Start ``script``; every process it starts inherits ``PT_TEST_TAG=tag``."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PT_TEST_TAG"] = tag
    with sigint_not_ignored():
        return subprocess.Popen(
            [sys.executable, os.path.join(SCRIPTS, script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            **kwargs,
        )


def wait_for_pid_files(folder, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(name.split(".")[0]) for name in os.listdir(folder) if name.endswith(".pid")]
        if len(set(pids)) >= count:
            return set(pids)
        time.sleep(0.05)
    raise AssertionError(f"workers did not start: {os.listdir(folder)}")


def test_script_without_main_guard_runs_once():
    process = python("no_main_guard.py")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.count("module body ran") == 1, out
    assert "result [8, 11, 14]" in out


def workers_of(process, folder):
    assert process.stdout.readline().strip() == "ready"
    from paralleltask import ProcessExecutor

    return wait_for_pid_files(folder, min(2, ProcessExecutor().max_workers))


def test_ctrl_c_reaches_caller_stops_workers_and_pool_recovers(tmp_path):
    tag = uuid.uuid4().hex
    process = python("interrupted.py", str(tmp_path), "catch", tag=tag)
    busy = workers_of(process, tmp_path)
    if sys.platform.startswith("linux"):
        assert busy <= tagged_pids(tag)  # the tag finds the script's workers
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert time.monotonic() - started < 10  # the 60 s tasks were stopped, not awaited
    assert "interrupted" in out and "after [1, 4, 9]" in out, (out, err)
    assert wait_gone(busy) == []
    if sys.platform.startswith("linux"):  # replacements started after Ctrl-C are gone too
        assert wait_gone(tagged_pids(tag)) == []


def test_uncaught_ctrl_c_exits_with_keyboard_interrupt_and_no_orphans(tmp_path):
    tag = uuid.uuid4().hex
    process = python("interrupted.py", str(tmp_path), "raise", tag=tag)
    busy = workers_of(process, tmp_path)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "KeyboardInterrupt" in err
    assert wait_gone(busy) == []
    if sys.platform.startswith("linux"):
        assert wait_gone(tagged_pids(tag)) == []
