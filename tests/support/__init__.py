"""Helpers shared by the test modules (no test module imports another).

- ``impls``: the implementations differential tests run on (LangGraph, and paralleltask
  on each executor) and one ``Api`` to write a program once against any of them;
- ``ported``: what the ported LangGraph tests share (``ported()``, ``AnyStr``, counters);
- ``processes``: starting ``scripts/`` in process groups, finding processes by tag;
- ``cache_job``, ``checkpoint_job``, ``retry_programs``: programs that a test runs both in
  the session and in a fresh interpreter (``python -c``), so both import them from here;
- ``starts_pool_at_import``: a module that starts its pool at import, for workers to import;
- ``scripts/``: the scripts tests run as real processes (referenced by path, ``SCRIPTS``).
"""

from __future__ import annotations

import os

#: The repository root (what a subprocess needs on ``PYTHONPATH`` to import ``tests``).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The folder of the scripts tests run as real processes.
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
