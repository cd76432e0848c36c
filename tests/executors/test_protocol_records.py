"""The pipe's messages are named types, plain tuples on the wire, documented as coded."""

from __future__ import annotations

import inspect
import pickle
import re

from paralleltask import _protocol
from paralleltask._protocol import (
    CALL,
    CANCEL,
    DONE,
    OK,
    CallBatch,
    CallOrder,
    Cancel,
    Done,
    dumps,
    dumps_call,
    loads,
    wire_call_order,
    wire_done,
)
from paralleltask._worker import _Worker
from paralleltask.executors._pool_timers import CallTimer

MESSAGE_TYPES = [CallBatch, _protocol.Dones, *_protocol._TYPES.values()]
KIND_NAMES = [
    "CALL",
    "CANCEL",
    "STOP",
    "ANSWER",
    "READY",
    "BOOT_FAILED",
    "DONE",
    "EVENT",
    "ASK",
    "KEEP",
    "HEARTBEAT",
    "STARTED",
    "DONES",
]


def test_a_call_order_is_what_the_worker_starts_a_call_with():
    parameters = list(inspect.signature(_Worker._start_call).parameters)[1:]  # less self
    assert parameters == list(CallOrder._fields)


def test_the_builders_of_the_per_call_messages_take_their_types_fields():
    assert list(inspect.signature(wire_call_order).parameters) == list(CallOrder._fields)
    assert list(inspect.signature(wire_done).parameters) == list(Done._fields[1:])
    assert wire_done(7, OK, b"value", 0.25, None, False) == Done(
        DONE, 7, OK, b"value", 0.25, None, False
    )


def test_every_message_type_starts_with_its_kind_and_each_kind_has_one_type():
    for message_type in MESSAGE_TYPES:
        assert message_type._fields[0] == "kind"
    kinds = {getattr(_protocol, name): name for name in KIND_NAMES}
    assert len(kinds) == 13 and set(kinds) == {CALL, _protocol.DONES, *_protocol._TYPES}
    for kind, message_type in _protocol._TYPES.items():  # BootFailed is BOOT_FAILED's
        assert message_type.__name__.upper() == kinds[kind].replace("_", "")


def test_the_docstring_names_every_message_and_its_fields_as_the_code_has_them():
    documented = dict(re.findall(r"^ {4}(\w+)\((\w+(?:, \w+)*)\)", _protocol.__doc__, re.M))
    for message_type in MESSAGE_TYPES:
        name = message_type.__name__
        fields = documented[name].split(", ")
        kind = fields.pop(0)
        assert getattr(_protocol, kind) in (CALL, _protocol.DONES, *_protocol._TYPES)
        assert fields == list(message_type._fields[1:]), name
    assert len(documented) == len(MESSAGE_TYPES)
    order = re.search(r"CallOrder\(([\w, \n]+)\)", _protocol.__doc__).group(1)
    assert re.split(r",\s*", order.strip()) == list(CallOrder._fields)


def test_messages_travel_as_plain_tuples_and_come_back_named():
    order = CallOrder(7, 3, None, b"args", False, 11, b"run", (1, 0.0))
    data = dumps_call([wire_call_order(*order)], (5,))
    raw = pickle.loads(data)
    assert type(raw) is tuple and type(raw[1][0]) is tuple
    assert b"CallOrder" not in data and b"_protocol" not in data
    message = loads(data)
    assert type(message) is CallBatch and type(message.items[0]) is CallOrder
    assert message == (CALL, [order], (5,))
    assert message.items[0].is_async is False and message.forget == (5,)

    done = Done(DONE, 7, OK, b"value", 0.25, None, False)
    for data in (dumps(done), dumps(wire_done(7, OK, b"value", 0.25, None, False))):
        assert type(pickle.loads(data)) is tuple and b"Done" not in data
        back = loads(data)
        assert type(back) is Done and back == done and back.seconds == 0.25
    assert type(loads(dumps(Cancel(CANCEL, 7)))) is Cancel


def test_a_call_timer_is_a_small_record():
    timer = CallTimer("call", "worker")
    assert (timer.started, timer.last_progress) == (None, None)
    assert not hasattr(timer, "__dict__")


def test_several_dones_travel_as_one_plain_message_and_come_back_named():
    items = [wire_done(i, OK, b"v", 0.1, None, False) for i in (1, 2)]
    data = _protocol.dumps_dones(items)
    assert type(pickle.loads(data)) is tuple and b"Done" not in data
    message = loads(data)
    assert type(message) is _protocol.Dones and message.kind == _protocol.DONES
    assert [type(d) for d in message.items] == [Done, Done]
    assert [d.call_id for d in message.items] == [1, 2]
