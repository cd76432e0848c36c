"""Serialization: cloudpickle on the way out, plain pickle on the way in.

Functions and arguments go to workers with cloudpickle, so functions defined in
``__main__``, closures and lambdas travel by value. Exceptions are re-built without
calling their ``__init__`` (whose signature need not match their ``args``), and carry
the worker's traceback text. This is a wire format between live processes, not a
storage format: nothing here promises to load bytes written by another version.
"""

from __future__ import annotations

import builtins
import pickle
import sys
import traceback
from typing import Any

import cloudpickle

from . import _buffers
from .errors import RemoteTraceback, SerializationError

PROTOCOL = pickle.HIGHEST_PROTOCOL

loads = pickle.loads


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` with cloudpickle (by value where plain pickle would go by reference)."""
    return cloudpickle.dumps(obj, protocol=PROTOCOL)


def dumps_arguments(
    task_name: str, args: tuple, kwargs: dict, scratch: Any = None, threshold: int | None = None
) -> Any:
    """Pickle a call's arguments (and, in a checkpointed run, its answers to
    ``interrupt()``), or raise :class:`SerializationError` naming the culprit. With a
    ``threshold``, buffers that large go out of band (``_buffers.OutOfBand``)."""
    try:
        if threshold is not None:
            return _buffers.dumps_call_arguments(args, kwargs, scratch, threshold)
        return dumps((args, kwargs) if scratch is None else (args, kwargs, scratch))
    except Exception as exc:
        raise _argument_error(task_name, args, kwargs, exc) from exc


def _argument_error(task_name: str, args: tuple, kwargs: dict, exc: Exception) -> Exception:
    named = [(str(i), f"positional argument {i}", v) for i, v in enumerate(args)]
    named += [(k, f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for argument, where, value in named:
        try:
            dumps(value)
        except Exception as culprit:
            return SerializationError(
                f"Task {task_name!r}: {where} ({type(value).__name__}) cannot be pickled "
                f"to send it to a worker: {type(culprit).__name__}: {culprit}",
                task=task_name,
                argument=argument,
            )
    return SerializationError(
        f"Task {task_name!r}: its arguments cannot be pickled together "
        f"to send them to a worker: {type(exc).__name__}: {exc}",
        task=task_name,
    )


def result_error(task_name: str, type_name: str, detail: str) -> SerializationError:
    """A task's result of type ``type_name`` would not pickle (``detail`` says why):
    the one wording, whichever executor found it."""
    return SerializationError(
        f"Task {task_name!r}: its result ({type_name}) cannot be pickled to bring it "
        f"back from the worker: {detail}",
        task=task_name,
    )


def copy_value(value: Any) -> Any:
    """Round-trip ``value`` through the wire format: what a worker's caller would get."""
    return loads(dumps(value))


# -- exceptions: reducer and rebuilder side by side -----------------------------------


def dumps_exception(exc: BaseException) -> bytes:
    """Pickle ``exc`` (with its ``__cause__``/``__context__`` chain) and its worker-side
    traceback text.

    An exception that will not pickle (an attribute holding a lock, say) is replaced by
    a :class:`SerializationError` (a :class:`TaskError`) carrying the original type
    name, message and traceback; a link of the chain that will not pickle is dropped.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    described = f"{type(exc).__module__}.{type(exc).__qualname__}: {_text(exc)}"
    try:
        inner = dumps(_portable(exc, set()))
    except Exception as failure:
        stand_in = SerializationError(
            f"{described} (the exception raised in the worker could not be pickled: "
            f"{type(failure).__name__}: {failure})"
        )
        inner = dumps(_portable(stand_in, set()))
    # Plain strings outside: they load even when the exception's class does not.
    return pickle.dumps((inner, described, tb), PROTOCOL)


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<str() failed>"


class UnloadableException(Exception):
    """An exception arrived but could not be rebuilt here; carries what is known of it."""

    def __init__(self, described: str, traceback_text: str, failure: BaseException) -> None:
        super().__init__(described, traceback_text, failure)
        self.described = described
        self.traceback_text = traceback_text
        self.failure = failure


def loads_exception(blob: bytes, where: str = "the worker") -> BaseException:
    """Re-build an exception pickled by :func:`dumps_exception`; its formatted output
    shows the worker's traceback (a note on 3.11+, the end of the cause chain before).
    Raises :class:`UnloadableException` (type name, message, traceback) if the
    exception itself will not load here."""
    inner, described, tb = loads(blob)
    try:
        portable = loads(inner)
        exc = _rebuilt(portable)
    except Exception as failure:
        raise UnloadableException(described, tb, failure) from None
    if hasattr(exc, "add_note"):
        exc.add_note(f"\nTraceback in {where} (most recent call last):\n{tb}".rstrip())
    else:  # Python 3.10: no notes; hang it at the end of the cause chain, as CPython does
        end, seen = exc, set()
        while end.__cause__ is not None and id(end) not in seen:
            seen.add(id(end))
            end = end.__cause__
        end.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
    return exc


#: How many links of a ``__cause__``/``__context__`` chain cross the boundary.
CHAIN_DEPTH = 8


def _portable(exc: BaseException, seen: set[int]) -> tuple:
    """``exc`` as picklable parts: how to rebuild it, its state, and its chain."""
    seen.add(id(exc))
    rebuild, args, state = _reduce_exception(exc)
    chain = []
    for linked in (exc.__cause__, exc.__context__):
        part = None
        if linked is not None and id(linked) not in seen and len(seen) < CHAIN_DEPTH:
            try:
                part = _portable(linked, seen)
                dumps(part)  # a link that will not pickle is dropped, not fatal
            except Exception:
                part = None
        chain.append(part)
    return rebuild, args, state, chain[0], chain[1], exc.__suppress_context__


def _rebuilt(portable: tuple) -> BaseException:
    rebuild, args, state, cause, context, suppress_context = portable
    exc = rebuild(*args)
    if state:
        _set_state(exc, state)
    if cause is not None:
        exc.__cause__ = _rebuilt(cause)
    if context is not None:
        exc.__context__ = _rebuilt(context)
    exc.__suppress_context__ = suppress_context
    return exc


def _reduce_exception(exc: BaseException) -> tuple:
    rv = exc.__reduce_ex__(PROTOCOL)
    func, args = rv[0], rv[1]
    state = rv[2] if len(rv) > 2 else None
    if _GROUP is not None and isinstance(exc, _GROUP):
        # Its members go as exceptions of their own: each may need the rebuild below.
        members = [_portable(member, set()) for member in exc.exceptions]
        return _rebuild_group, (type(exc), exc.message, members), state
    if func is type(exc) and not _reduces_itself(type(exc)):
        # The built-in reduction calls ``cls(*self.args)``: that fails when ``__init__``
        # takes other arguments than it passes to ``super().__init__``, and runs user code.
        return _rebuild_exception, (func, args), state
    return func, args, state


#: BaseExceptionGroup (Python 3.11+), or None.
_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)


def _reduces_itself(cls: type) -> bool:
    """True if the class (not a built-in base) says how to rebuild it, as
    ``json.JSONDecodeError`` does with its constructor's arguments."""
    for klass in cls.__mro__:
        if "__reduce__" in vars(klass) or "__reduce_ex__" in vars(klass):
            return klass.__module__ != "builtins"
    return False


def _rebuild_group(cls: type, message: str, members: list) -> BaseException:
    return cls.__new__(cls, message, [_rebuilt(member) for member in members])


def _rebuild_exception(cls: type, args: tuple) -> BaseException:
    """Make ``cls`` with ``args`` without running a user-defined ``__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    # Built-in fields come from the built-in __init__ (SystemExit.code, OSError.errno...).
    builtin = next(c for c in cls.__mro__ if c.__module__ == "builtins")
    try:
        builtin.__init__(exc, *args)
    except Exception:
        pass
    return exc


def _set_state(exc: BaseException, state: Any) -> None:
    if hasattr(exc, "__setstate__"):
        exc.__setstate__(state)
    elif isinstance(state, dict):
        exc.__dict__.update(state)


# Records stored before this module was made private name it ``paralleltask.serde``
# (a failed call's exception is pickled with a reference to its rebuilder, above):
# pickle still finds it under that name, as NumPy keeps ``numpy.core`` for pickles
# that name ``numpy._core``'s old home.
sys.modules.setdefault("paralleltask.serde", sys.modules[__name__])
