"""Executors: where task calls run. One small protocol (``base.Executor``), several homes."""

from .base import Executor
from .inline import InlineExecutor
from .process import ProcessExecutor
from .thread import ThreadExecutor

__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "ThreadExecutor"]
