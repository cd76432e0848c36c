"""Worker retirement limits: ``max_tasks_per_child`` and ``max_memory_per_child``.

A worker that reached either limit is *retired*: it gets no more calls, finishes what
it holds, gets STOP after its last DONE, and a replacement is started at once so the
pool keeps its size (the stdlib's ``max_tasks_per_child``; loky's and Dask's nanny's
memory limits). The parent decides; the worker only measures its resident set size
after each call when told to, and reports it in DONE.

RSS is read from ``/proc/self/statm`` on Linux (one ``pread`` of a file kept open, about
a microsecond: no dependency for the common case); elsewhere from ``psutil`` when it is
installed, else ``resource.getrusage``'s peak RSS (a peak, not the current size: it can
only retire a worker later than the current size would, never wrongly keep one under).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def as_max_tasks(value: object) -> int | None:
    """``max_tasks_per_child``: None or a positive int (the stdlib's meaning)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"max_tasks_per_child must be a positive int or None, got {value!r}")
    return value


def as_max_memory(value: object) -> int | None:
    """``max_memory_per_child`` in bytes (see :func:`as_size`)."""
    return as_size(value, "max_memory_per_child")


def as_size(value: object, name: str) -> int | None:
    """A size in bytes: None, a positive int, or a string such as ``"2GiB"``,
    ``"500MB"``, ``"1.5 GB"`` (kB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024, as
    Dask's ``parse_bytes``)."""
    if value is None:
        return None
    wrong = f"{name} must be bytes (a positive int) or a size such as '2GiB' or '500MB'"
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = match and _UNITS.get(match.group(2).lower())
        if unit is None:
            raise ValueError(f"{wrong}, got {value!r}")
        size = int(float(match.group(1)) * unit)
    elif isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raise ValueError(f"{wrong}, got {value!r}")
    if size <= 0:
        raise ValueError(f"{name} must be more than 0 bytes, got {value!r}")
    return size


def rss_reader() -> Callable[[], int]:
    """A function returning this process's resident set size in bytes (see above)."""
    if sys.platform.startswith("linux"):
        try:
            fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            pass
        else:
            page = os.sysconf("SC_PAGE_SIZE")
            # statm: size resident shared ... (in pages); pread re-reads it from 0.
            return lambda: int(os.pread(fd, 128, 0).split()[1]) * page
    try:
        import psutil
    except ImportError:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    process = psutil.Process()
    return lambda: process.memory_info().rss
