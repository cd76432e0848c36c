"""Helpers to look for processes (Linux /proc; kill(0) elsewhere), shared by the test
modules that start scripts and workers (no test module imports another)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from tests.support import ROOT, SCRIPTS


def alive(pid):
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def tagged_pids(tag):
    """Pids of live processes whose environment carries ``PT_TEST_TAG=tag`` (Linux)."""
    marker = f"PT_TEST_TAG={tag}".encode() + b"\0"
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if marker in f.read() and alive(int(name)):
                        found.add(int(name))
            except OSError:
                continue
    return found


def wait_gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@contextlib.contextmanager
def sigint_not_ignored():
    """Children get Ctrl-C as from a terminal: under a runner that started us in the
    background (nohup, some CI), SIGINT is ignored and children would inherit that."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)  # reset to default at exec
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def script(name, *args, tag=""):
    """Start ``tests/support/scripts/<name>`` in a process group of its own (as a terminal's
    foreground job); every process it starts inherits ``PT_TEST_TAG=tag``."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PT_TEST_TAG"] = tag
    with sigint_not_ignored():
        return subprocess.Popen(
            [sys.executable, os.path.join(SCRIPTS, name), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )


def finish(process, timeout=40):
    """Wait for ``process``; kill its group if it hangs (the test then fails)."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"script hung:\n{out}\n{err}") from None
