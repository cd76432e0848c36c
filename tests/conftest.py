"""Shared fixtures: one warm process pool for the whole session, and a deadlock guard.

pytest-timeout (``timeout`` in pyproject.toml, thread method) dumps every thread's
traceback instead of letting a hung test hang CI.
"""

from __future__ import annotations

import os
import sys

import pytest

from paralleltask import ProcessExecutor

# Test modules define tasks at module level; workers import them by reference.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session", autouse=True)
def warm_pool():
    """Start the default pool once per session: every test and example reuses it."""
    executor = ProcessExecutor().start()
    yield executor


@pytest.fixture(autouse=True)
def private_key_file(tmp_path_factory, monkeypatch):
    """Sign stored values with a key of this test session, never the user's own."""
    key_file = tmp_path_factory.getbasetemp() / "store.key"
    monkeypatch.setenv("PARALLELTASK_KEY_FILE", str(key_file))
    monkeypatch.delenv("PARALLELTASK_STORE_KEY", raising=False)


@pytest.fixture
def langgraph_func():
    """LangGraph's functional API, for differential tests; skipped when not installed."""
    return pytest.importorskip("langgraph.func")
