"""A thread's records and writes as the store keeps them, and as LangGraph shows them.

One place for the format both sides share: :class:`ThreadCheckpoints` (``_checkpoint``) writes
it during a run, the state methods (``_state``) read it afterwards. Slot keys, the ids
that sort as their records, how a record is built once the store has given it its
``seq``, and a record's config, metadata and ``checkpoints`` chunk in LangGraph's shapes.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import struct
import uuid
from collections.abc import Callable
from typing import Any

from ._stream import interrupt_dicts

#: The body's own slot; a task call's is :func:`call_slot`.
BODY = b""
#: Writes per slot, by key prefix: ``o`` the result, ``e`` the body's error, ``i`` the
#: last interrupt the slot raised, ``r`` the answers given to its ``interrupt()`` calls.
OUTCOME, ERROR, PENDING, ANSWERS = b"o", b"e", b"i", b"r"
_SLOT = struct.Struct(">I")


def call_slot(index: int) -> bytes:
    """The slot of the body's ``index``-th task call (0-based); sorts in call order."""
    return _SLOT.pack(index + 1)


def new_checkpoint_id(seq: int) -> str:
    """A UUID-shaped id that sorts as the checkpoint's ``seq`` and names it uniquely."""
    return str(uuid.UUID(int=(seq << 80) | secrets.randbits(80)))


def seq_of(checkpoint_id: str) -> int:
    try:
        return uuid.UUID(checkpoint_id).int >> 80
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"not a checkpoint_id of this store: {checkpoint_id!r}") from None


def entry_task_id(record: dict, name: str) -> str:
    """The entrypoint's own task id in the run of ``record`` (kept when it resumes)."""
    digest = hashlib.sha256(f"{record['checkpoint_id']}|{name}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def maker(thread_id: str, parent: dict | None, **fields: Any) -> Callable[[int], dict]:
    """How to build a record once the store has given it its ``seq`` (see
    :meth:`Store.checkpoint_add`); ``parent`` is the record the run started from."""
    parent_id = parent["checkpoint_id"] if parent else None
    created_at = datetime.datetime.now(datetime.timezone.utc).isoformat()

    def make(seq: int) -> dict:
        return {
            "thread_id": thread_id,
            "seq": seq,
            "checkpoint_id": new_checkpoint_id(seq),
            "parent_id": parent_id,
            "created_at": created_at,
            **fields,
        }

    return make


def with_parent(make: Callable[[int], dict], parent_id: str | None) -> Callable[[int], dict]:
    def make_with_parent(seq: int) -> dict:
        return {**make(seq), "parent_id": parent_id}

    return make_with_parent


def record_config(record: dict, checkpoint_id: str | None = None) -> dict:
    """The config that names ``record`` (or, given ``checkpoint_id``, its parent)."""
    return {
        "configurable": {
            "thread_id": record["thread_id"],
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id or record["checkpoint_id"],
        }
    }


def checkpoint_payload(record: dict, name: str, interrupts: tuple = ()) -> dict:
    """A record as LangGraph's ``checkpoints`` stream chunk (and debug payload) shows it."""
    parent = record["parent_id"]
    pending = tuple(interrupt_dicts(interrupts))
    return {
        "config": record_config(record),
        "parent_config": record_config(record, parent) if parent else None,
        "values": record["values"],
        "metadata": record_metadata(record),
        "next": list(record["next"]),
        "tasks": [
            {"id": entry_task_id(record, name), "name": name, "interrupts": pending, "state": None}
            for name in record["next"]
        ],
    }


def record_metadata(record: dict) -> dict:
    """A record's metadata as LangGraph shows it: its source and step, then its run's."""
    metadata = {"source": record["source"], "step": record["step"], "parents": {}}
    for key, value in record.get("metadata", {}).items():  # none in older records
        metadata.setdefault(key, value)
    return metadata
