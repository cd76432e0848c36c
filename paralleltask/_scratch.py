"""A call's answers to ``interrupt()``: plain data, so it travels with a call to a worker.

Each task call (and the entrypoint body) has a :class:`Scratch`: the answers it has
been given so far, in the order its ``interrupt()`` calls asked (``_interrupt.py``
uses them; the checkpoint keeps them).
"""

from __future__ import annotations

import hashlib
from typing import Any

#: What a scratch's ``taker`` returns when no answer is waiting for this call.
NO_ANSWER = object()


class Scratch:
    """One call's answers to ``interrupt()``, and how many of them it asked for so far.

    ``ns`` names the call within its thread and checkpoint: interrupt ids derive from
    it. ``taker``, in the parent only, hands out an answer not yet tied to a call
    (``Command(resume=value)``) and records it.
    """

    __slots__ = ("answers", "asked", "ns", "taker")

    def __init__(self, ns: str, answers: list | None = None, taker: Any = None) -> None:
        self.ns = ns
        self.answers = list(answers or ())
        self.asked = 0
        self.taker = taker

    def interrupt_id(self, answered: int) -> str:
        return hashlib.sha256(f"{self.ns}|{answered}".encode()).hexdigest()[:32]

    def __reduce__(self):
        return Scratch, (self.ns, self.answers)
