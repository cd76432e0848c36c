"""Executors: where task calls run. One small protocol (``base.Executor``), several homes."""

from .base import Executor
from .dask import DaskExecutor
from .inline import InlineExecutor
from .process import ProcessExecutor
from .thread import ThreadExecutor

__all__ = ["DaskExecutor", "Executor", "InlineExecutor", "ProcessExecutor", "ThreadExecutor"]
