"""LangGraph's state methods over a thread's checkpoints: read its states, add one.

``get_state``, ``get_state_history`` and ``update_state`` of an entrypoint, as functions
of its checkpointer: the records a run wrote (see ``_records``) read back as
:class:`StateSnapshot`, and ``update_state``'s record, the next run's ``previous``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import _serde
from ._records import (
    ANSWERS,
    BODY,
    ERROR,
    OUTCOME,
    PENDING,
    entry_task_id,
    maker,
    record_config,
    record_metadata,
    seq_of,
)
from ._run_config import config_metadata, thread_id_of
from .errors import InvalidUpdateError
from .stores.base import MISS, Store
from .types import PregelTask, StateSnapshot


def history(
    store: Store,
    config: dict[str, Any],
    name: str,
    filter: dict[str, Any] | None,
    before: dict[str, Any] | None,
    limit: int | None,
) -> Iterator[StateSnapshot]:
    """``get_state_history``: the thread's states, newest first (only the config's
    ``checkpoint_id``'s, if it names one; none in a ``checkpoint_ns`` other than the
    root's, as LangGraph)."""
    thread_id = thread_id_of(config, reading=True)
    if config["configurable"].get("checkpoint_ns"):
        return  # an entrypoint's checkpoints are all in the root namespace
    only_id = config["configurable"].get("checkpoint_id")
    before_id = ((before or {}).get("configurable") or {}).get("checkpoint_id")
    before_seq = seq_of(before_id) if before_id else None
    count = 0
    for record in store.checkpoint_history(thread_id):
        if limit is not None and count >= limit:
            return
        if before_seq is not None and record["seq"] >= before_seq:
            continue
        if only_id and record["checkpoint_id"] != only_id:
            continue
        state = snapshot_of(store, record, name)
        if filter and any(state.metadata.get(k) != v for k, v in filter.items()):
            continue
        count += 1
        yield state


def update_state(
    store: Store, config: dict[str, Any], name: str, values: Any, as_node: str | None
) -> dict[str, Any]:
    """``update_state`` of the entrypoint ``name``: ``as_node`` may only name it."""
    if as_node is not None and as_node != name:
        raise InvalidUpdateError(f"Node {as_node} does not exist")
    thread_id = thread_id_of(config, reading=True)
    checkpoint_id = config["configurable"].get("checkpoint_id")
    return update(store, thread_id, values, config_metadata(config), checkpoint_id)


def update(
    store: Store, thread_id: str, values: Any, metadata: dict, checkpoint_id: str | None = None
) -> dict:
    """``update_state``: a new record holding ``values`` (and them as ``previous``),
    the thread's latest. From an older ``checkpoint_id`` it forks, as LangGraph: that
    checkpoint is its parent and gives its step; the history keeps both branches."""
    latest = store.checkpoint_get(thread_id)
    base = latest
    if checkpoint_id and (latest is None or checkpoint_id != latest["checkpoint_id"]):
        base = store.checkpoint_get(thread_id, seq_of(checkpoint_id))
        if base is None or base["checkpoint_id"] != checkpoint_id:
            raise ValueError(
                f"update_state: thread {thread_id!r} has no checkpoint {checkpoint_id!r}"
            )
    make = maker(
        thread_id,
        base,
        source="update",
        metadata=metadata,
        step=base["step"] + 1 if base else 0,
        values=values,
        previous=values,
        next=(),
        input=None,
    )
    return record_config(store.checkpoint_add(thread_id, make, wait=True))  # or StoreError


def snapshot(store: Store, config: dict, name: str) -> StateSnapshot:
    """The state at the config's ``checkpoint_id``, or the latest one (whose
    interrupts are those still waiting for an answer)."""
    thread_id = thread_id_of(config, reading=True)
    checkpoint_id = config["configurable"].get("checkpoint_id")
    if config["configurable"].get("checkpoint_ns"):  # not the root's: nothing there
        record = None
    elif checkpoint_id:
        record = store.checkpoint_get(thread_id, seq_of(checkpoint_id))
        if record is not None and record["checkpoint_id"] != checkpoint_id:
            record = None
    else:
        record = store.checkpoint_get(thread_id)
    if record is None:
        return StateSnapshot({}, (), config, None, None, None, (), ())
    return snapshot_of(store, record, name, pending_only=not checkpoint_id)


def snapshot_of(store: Store, record: dict, name: str, pending_only: bool = False) -> StateSnapshot:
    tasks: tuple = ()
    interrupts: tuple = ()
    if record["next"]:
        thread_id, seq = record["thread_id"], record["seq"]
        body = store.write_get(thread_id, seq, OUTCOME + BODY)
        result = None if body is MISS else _serde.loads(body[2])
        failed = store.write_get(thread_id, seq, ERROR + BODY)
        error = None if failed is MISS else failed[2]
        answers = {slot: len(e[2]) for slot, e in store.write_items(thread_id, seq, ANSWERS)}
        interrupts = tuple(
            pause
            for slot, entry in store.write_items(thread_id, seq, PENDING)
            if not pending_only or answers.get(slot, 0) <= entry[3]
            for pause in entry[2]
        )
        task = PregelTask(
            entry_task_id(record, name),
            name,
            ("__pregel_pull", name),
            error,
            interrupts,
            None,
            result,
        )
        tasks = (task,)
    parent = record["parent_id"]
    return StateSnapshot(
        values=record["values"],
        next=tuple(record["next"]),
        config=record_config(record),
        metadata=record_metadata(record),
        created_at=record["created_at"],
        parent_config=record_config(record, parent) if parent else None,
        tasks=tasks,
        interrupts=interrupts,
    )
