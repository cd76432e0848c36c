"""Helpers to look for processes (Linux /proc; kill(0) elsewhere), shared by the test
modules that start scripts and workers (no test module imports another)."""

from __future__ import annotations

import os
import time


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
