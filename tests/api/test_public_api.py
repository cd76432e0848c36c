"""The public surface: exactly these names, each importable from the package."""

import paralleltask

PUBLIC = {
    "CachePolicy",
    "Command",
    "DaskExecutor",
    "Entrypoint",
    "ExecutionInfo",
    "Executor",
    "InlineExecutor",
    "Interrupt",
    "LMDBStore",
    "MemoryStore",
    "ProcessExecutor",
    "RetryPolicy",
    "Runtime",
    "SerializationError",
    "ServerInfo",
    "StateSnapshot",
    "StoreError",
    "TaskError",
    "TaskFunction",
    "TaskTimeoutError",
    "ThreadExecutor",
    "TimeoutPolicy",
    "WorkerCrashedError",
    "default_cache_key",
    "default_retry_on",
    "entrypoint",
    "get_config",
    "get_runtime",
    "get_stream_writer",
    "interrupt",
    "shared",
    "task",
}


def test_all_is_pinned():
    assert set(paralleltask.__all__) == PUBLIC


def test_every_public_name_is_importable():
    for name in PUBLIC:
        assert getattr(paralleltask, name) is not None


def test_version_is_set():
    assert paralleltask.__version__.count(".") == 2


def test_importing_imports_neither_langgraph_nor_dask():
    import subprocess
    import sys

    code = (
        "import sys, paralleltask; "
        "print([m for m in ('langgraph', 'distributed', 'dask') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
