"""Checkpoints of one run: where it starts on its thread, what it replays, what it keeps.

A thread (LangGraph's ``thread_id``) is a sequence of checkpoint records in the store.
A fresh run adds an *input* record (``next == (name,)``: the body is to run on
``input``). Each task call the body makes gets a slot, numbered in call order, and
its result is written there as it finishes (``durability`` says when that write is
durable); the body's own outcome has the slot ``BODY``. A run that ends well adds a
*loop* record holding the return value (``values``) and the next run's ``previous``.

A run that failed, was interrupted or was killed leaves its input record last:
``invoke(None)`` or ``invoke(Command(resume=...))`` runs the body again from it, and
each call whose slot holds a result is answered from there, read when it is made
(never all at once). The same input again starts a fresh run, as in LangGraph.

Writes per slot, by key prefix: ``o`` the result, ``e`` the body's error, ``i`` the
last interrupt the slot raised (with how many answers it had then: it is pending until
it has one more), ``r`` the answers given to the slot's ``interrupt()`` calls.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _serde
from ._nested import NestedSlots
from ._records import (
    ANSWERS,
    BODY,
    ERROR,
    OUTCOME,
    PENDING,
    call_slot,
    checkpoint_payload,
    maker,
    with_parent,
)
from ._run_config import check_durability, config_metadata, thread_id_of
from ._scratch import NO_ANSWER, Scratch
from .errors import EmptyInputError, StoreError
from .stores.base import MISS, Ledger, OnCommit, Store
from .types import Interrupt

if TYPE_CHECKING:
    from ._stream import Sink

_NOTHING = object()


#: LangGraph's error for ``Command(resume=value)`` while several interrupts wait.
AMBIGUOUS_RESUME = (
    "When there are multiple pending interrupts, you must specify the interrupt id when "
    "resuming. Docs: https://docs.langchain.com/oss/python/langgraph/interrupts"
    "#handling-multiple-interrupts."
)
_INTERRUPT_ID = re.compile(r"[0-9a-f]{32}")


def is_resume_map(answer: Any) -> bool:
    """LangGraph's rule: a dict whose keys all look like interrupt ids answers by id."""
    return isinstance(answer, dict) and all(
        isinstance(key, str) and _INTERRUPT_ID.fullmatch(key) for key in answer
    )


def as_command(value: Any) -> Any:
    """``value`` if it is a Command (ours, or LangGraph's in a half-migrated program)."""
    if type(value).__name__ != "Command" or not hasattr(value, "resume"):
        return None
    if getattr(value, "graph", None) or getattr(value, "update", None) is not None:
        raise ValueError(
            f"{value!r}: an entrypoint has no graph state to update; Command takes "
            "resume= only here"
        )
    if getattr(value, "goto", ()):
        raise ValueError(f"{value!r}: an entrypoint has no nodes to go to")
    return value


class Start(NamedTuple):
    """What :meth:`ThreadCheckpoints.begin` decided: run the body on ``input``, or not at all
    (the thread has nothing to resume) and answer ``value``."""

    run_body: bool
    input: Any = None
    value: Any = None


class ThreadCheckpoints:
    """One run's view of its thread, in the parent: it decides where the run starts,
    answers replayed calls, and writes results, interrupts and checkpoints."""

    def __init__(
        self,
        store: Store,
        thread_id: str,
        name: str,
        durability: str,
        sink: Sink | None,
        metadata: dict | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger if ledger is not None else Ledger()  # puts that failed
        self.thread_id = thread_id
        self.metadata = metadata or {}  # from the run's config, on each record it adds
        self.name = name
        self.durability = durability
        self.sink = sink
        self.record: dict = {}
        self.replaying = False
        self.interrupts: list[Interrupt] = []  # raised during this run
        self._calls = 0
        self._pending: dict[bytes, tuple] = {}  # slot -> its unanswered interrupts
        self._answers: dict[bytes, list] = {}  # slot -> its answers so far
        self._answer: Any = _NOTHING  # Command(resume=value): the next pending one's
        self._answers_by_id: dict[str, Any] = {}
        self._held: list[tuple[Callable, tuple]] = []  # durability="exit": written at the end

    # -- the start ----------------------------------------------------------------------

    def begin(self, input: Any) -> Start:
        latest = self.store.checkpoint_get(self.thread_id)
        command = as_command(input)
        if command is None and input is None:
            if latest is None:
                raise EmptyInputError("Received no input for __start__")
            if latest["next"]:
                self._resume(latest, _NOTHING)
                return Start(True, latest["input"])
            return self._nothing_to_run(latest)
        if command is not None and latest is not None:  # (none: LangGraph runs the body
            if not latest["next"]:  # on the Command itself, as on any input)
                return self._nothing_to_run(latest)
            self._resume(latest, command.resume)
            return Start(True, latest["input"])
        self._fresh(latest, input)
        return Start(True, input)

    @property
    def previous(self) -> Any:
        return self.record.get("previous")

    def _nothing_to_run(self, latest: dict) -> Start:
        if self.sink is not None:
            self.sink.emit("values", latest["values"])
        return Start(False, value=latest["values"])

    def _fresh(self, latest: dict | None, input: Any) -> None:
        # The store gives the input record its seq once, to whichever process asks
        # first: a run of another process on this thread, started from the same
        # `latest`, gets the next (both records have `latest` as parent: two branches,
        # as two forks). Under "sync" the body starts once the record is committed;
        # under "exit" the seq is only taken: the record is written if the run fails.
        make = maker(
            self.thread_id,
            latest,
            source="input",
            metadata=self.metadata,
            step=latest["step"] + 1 if latest else -1,
            values=latest["values"] if latest else None,
            previous=latest["previous"] if latest else None,
            next=(self.name,),
            input=input,
        )
        exit = self.durability == "exit"
        watch = self.ledger.watch(("checkpoint", self.thread_id, "(new)", "input"))
        self.record = self.store.checkpoint_add(
            self.thread_id, make, not exit, watch, wait=self.durability == "sync"
        )
        if exit:
            what = ("checkpoint", self.thread_id, self.record["seq"], "input")
            put = self.store.checkpoint_put
            self._held.append((put, (self.thread_id, self.record, self.ledger.watch(what))))
        self._announce(self.record)
        self._step_events()

    def _resume(self, latest: dict, answer: Any) -> None:
        self.record = latest
        self.replaying = True
        seq = latest["seq"]
        for slot, entry in self.store.write_items(self.thread_id, seq, ANSWERS):
            self._answers[slot] = list(entry[2])
        for slot, entry in self.store.write_items(self.thread_id, seq, PENDING):
            if len(self._answers.get(slot, ())) <= entry[3]:
                self._pending[slot] = entry[2]
        if is_resume_map(answer):  # ids that match nothing answer nothing, as LangGraph
            self._answers_by_id = dict(answer)
        elif answer is not None:
            if len(self._pending_ids()) > 1:
                raise RuntimeError(AMBIGUOUS_RESUME)
            self._answer = answer
        if self.sink is not None:
            self.sink.emit("values", latest["values"])
            pending = tuple(i for interrupts in self._pending.values() for i in interrupts)
            self._announce(latest, pending)
            self._step_events()

    def _step_events(self) -> None:
        if self.sink is not None:  # debug task events carry the step after the record's
            self.sink.step = self.record["step"] + 1

    def _pending_ids(self) -> set[str]:
        return {i.id for interrupts in self._pending.values() for i in interrupts}

    def restart(self) -> None:
        """The body runs again (a retry): number its calls afresh and replay those that
        finished in the failed attempt."""
        self.store.flush()
        self._calls = 0
        self.replaying = True

    # -- calls --------------------------------------------------------------------------

    def next_slot(self) -> bytes:
        slot = call_slot(self._calls)
        self._calls += 1
        return slot

    def replayed(self, slot: bytes, name: str) -> Any:
        """The saved result of the call in ``slot`` if it is a call of ``name``, or MISS."""
        if not self.replaying:
            return MISS
        entry = self.store.write_get(self.thread_id, self.record["seq"], OUTCOME + slot)
        if entry is MISS or entry[0] != "ok" or entry[1] != name:
            return MISS
        return _serde.loads(entry[2])

    def scratch(self, slot: bytes) -> Scratch:
        """The answers the call in ``slot`` has to its ``interrupt()`` calls."""
        if not self.replaying and slot != BODY:
            return Scratch(self._ns(slot))  # a fresh run's call has no answers yet
        answers = self._answers.setdefault(slot, [])
        if self.replaying and self._give_answer(slot, answers):
            self._answered(slot, answers)
        scratch = Scratch(self._ns(slot), answers)
        if slot == BODY:
            scratch.taker = self._take_for_body
        return scratch

    def _give_answer(self, slot: bytes, answers: list) -> bool:
        """Add the answer meant for ``slot``'s pending interrupt, if one was given."""
        pending = self._pending.get(slot)
        if not pending:
            return False
        by_id = self._answers_by_id
        if by_id:
            # LangGraph's older versions gave all of a call's interrupts its first id:
            # that id still answers the call's later ones.
            first_id = Scratch(self._ns(slot)).interrupt_id(0)
            for key in (*(pause.id for pause in pending), first_id):
                if key in by_id:
                    answers.append(by_id.pop(key))
                    return True
        if self._answer is not _NOTHING:
            answers.append(self._answer)
            self._answer = _NOTHING
            return True
        return False

    def _take_for_body(self, scratch: Scratch) -> Any:
        # The body asks again past its answers: a plain Command(resume=value) still
        # unclaimed answers it (LangGraph gives it to the first interrupt that asks).
        if self._answer is _NOTHING:
            return NO_ANSWER
        answer, self._answer = self._answer, _NOTHING
        scratch.answers.append(answer)
        self._answered(BODY, scratch.answers)
        return answer

    def _answered(self, slot: bytes, answers: list) -> None:
        """``slot`` got one more answer: keep its answers; its interrupt is no longer
        pending (it asks again, with a new id, if it needs more)."""
        self._put(self._write, ANSWERS + slot, ("answers", self.name, list(answers)))
        self._pending.pop(slot, None)

    def _ns(self, slot: bytes) -> str:
        return f"{self.thread_id}|{self.record.get('checkpoint_id')}|{slot.hex()}"

    def keep_outcome(
        self,
        slot: bytes,
        name: str,
        ok: bool,
        value: Any,
        pickled: bytes | None,
        on_commit: OnCommit,
    ) -> bool:
        """Keep a call's outcome; True if ``on_commit`` will be called once it is
        committed, or failed (``durability="sync"``), False if the caller may go on at
        once (a failed commit is then the run's error, at its end)."""
        if ok:
            blob = pickled if pickled is not None else _serde.dumps(value)
            wait = on_commit if self.durability == "sync" else None
            self._put(self._write, OUTCOME + slot, ("ok", name, blob), wait)
            return wait is not None
        interrupts = getattr(value, "interrupts", None)
        if type(value).__name__ == "GraphInterrupt" and interrupts:
            self._interrupted(slot, name, tuple(interrupts))
        return False

    def _interrupted(self, slot: bytes, name: str, interrupts: tuple) -> None:
        self.interrupts.extend(interrupts)
        answered = len(self._answers.get(slot, ()))
        self._put(self._write, PENDING + slot, ("interrupt", name, interrupts, answered))

    # -- nested calls (a SlotBackend: see _nested.py) ------------------------------------

    def lookup(self, slot: bytes, name: str) -> Any:
        return self.replayed(slot, name)

    def keep(self, slot: bytes, name: str, blob: bytes) -> None:
        self._put(self._write, OUTCOME + slot, ("ok", name, blob))

    def nested(self, slot: bytes) -> NestedSlots:
        """The slots of the calls made inside the call in ``slot``."""
        return NestedSlots(self, slot)

    # -- the end ------------------------------------------------------------------------

    def finished(self, value: Any, save: Any) -> None:
        """The body returned and every call finished: the loop record. (With
        ``durability="exit"`` it is all that is written, as in LangGraph.) A loop
        record that cannot be stored is the run's error (see :class:`Ledger`)."""
        exit = self.durability == "exit"
        if exit:  # the input record is not written: it is skipped, and so are its writes
            self._held.clear()
        body = ("ok", self.name, _serde.dumps(value))  # (fails here if it will not pickle)
        make = maker(
            self.thread_id,
            self.record,
            source="loop",
            metadata=self.metadata,
            step=self.record["step"] + 1,
            values=value,
            previous=save,
            next=(),
            input=None,
        )
        if exit:
            parent_id = self.record["parent_id"]
            make = with_parent(make, parent_id)
        # The seq is taken before the body's outcome is queued: taking it reads the
        # thread's last record, which waits for a commit under way; queued together,
        # both go in one commit.
        what = ("checkpoint", self.thread_id, "(new)", "loop")
        try:
            record = self.store.checkpoint_add(self.thread_id, make, True, self.ledger.watch(what))
        except StoreError as error:  # no seq to be had (a full disk): the run's error
            self.ledger.settled(what, error)
            record = None
        if not exit:
            self._write(OUTCOME + BODY, body)
        if record is not None:
            self._announce(record)
        self.close()  # flushed: a loop record that could not be stored is in the ledger

    def failed(self, exc: BaseException) -> None:
        """The body raised: the error shows in ``get_state().tasks``; the input record
        stays last, so ``invoke(None)`` resumes."""
        self._put(self._write, ERROR + BODY, ("error", self.name, repr(exc)))
        self.close()

    def paused(self, raised_by_body: tuple) -> list[Interrupt]:
        """The run stopped at ``interrupt()``: every interrupt raised, body's last."""
        if raised_by_body:
            self._interrupted(BODY, self.name, raised_by_body)
        self.close()
        return list(dict.fromkeys(self.interrupts))

    def close(self) -> None:
        """Write what was held back (``durability="exit"``) and wait until all is stored;
        also on Ctrl-C, so the next invoke resumes from every finished call."""
        held, self._held = self._held, []
        for put, args in held:
            put(*args)
        self.store.flush()

    # -- writing ------------------------------------------------------------------------

    def _write(self, key: bytes, entry: Any, on_commit: OnCommit = None) -> None:
        seq = self.record["seq"]
        if on_commit is None:  # a failure is the run's, told at its end
            on_commit = self.ledger.watch(("write", self.thread_id, seq, key, entry[1]))
        self.store.write_put(self.thread_id, seq, key, entry, on_commit)

    def _put(self, put: Callable, *args: Any) -> None:
        if self.durability == "exit":
            self._held.append((put, args))
        else:
            put(*args)

    def _announce(self, record: dict, interrupts: tuple = ()) -> None:
        sink = self.sink
        if sink is None or not ({"checkpoints", "debug"} & sink.modes):
            return
        payload = checkpoint_payload(record, self.name, interrupts)
        sink.emit("checkpoints", payload)
        if "debug" in sink.modes:
            event = {"step": record["step"], "timestamp": record["created_at"]}
            sink.emit("debug", {**event, "type": "checkpoint", "payload": payload})


def open_thread(
    store: Store | None,
    config: dict,
    name: str,
    durability: str | None,
    sink: Sink | None,
    ledger: Ledger,
    stacklevel: int = 3,
) -> ThreadCheckpoints | None:
    """The run's checkpoints on the config's thread, from its latest checkpoint; None
    without a checkpointer (then a ``durability`` is warned about, at the caller of
    ``invoke()`` & co., as LangGraph warns: ``stacklevel`` counts from here)."""
    if store is None:
        if durability is not None:
            message = "`durability` has no effect when no checkpointer is present."
            warnings.warn(message, stacklevel=stacklevel)
        return None
    durability = check_durability(durability)
    thread_id = thread_id_of(config)
    checkpoint_id = (config.get("configurable") or {}).get("checkpoint_id")
    if checkpoint_id and not _is_latest(store, thread_id, checkpoint_id):
        raise NotImplementedError(
            "invoke() from a given checkpoint_id (time travel) is not supported: "
            "paralleltask resumes a thread from its latest checkpoint; leave "
            "checkpoint_id out of the config (or give the latest one's)"
        )
    metadata = config_metadata(config)
    return ThreadCheckpoints(store, thread_id, name, durability, sink, metadata, ledger)


def _is_latest(store: Store, thread_id: str, checkpoint_id: str) -> bool:
    """``checkpoint_id`` is the thread's latest (a state's config, say): no travel."""
    latest = store.checkpoint_get(thread_id)
    return latest is not None and latest["checkpoint_id"] == checkpoint_id
