"""Stores: where cache entries and checkpoints live. One protocol, two homes."""

from .base import MISS, Store
from .lmdb import LMDBStore
from .memory import MemoryStore

__all__ = ["MISS", "LMDBStore", "MemoryStore", "Store"]
