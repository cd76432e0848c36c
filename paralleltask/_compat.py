"""LangGraph's arguments that paralleltask takes otherwise: older names, options with
nothing to do here, and parameters not built yet, each taken as LangGraph takes it or
refused with the reason.

A program written for ``langgraph.func`` may still say ``task(retry=...)`` or pass
``debug=False`` to ``stream``: the deprecated names work (with LangGraph's warning), an
option left at its "off" value is accepted, and one that asks for something paralleltask
does not do is refused with the reason, never silently ignored. A parameter of the
public contract not built yet (``entrypoint(store=...)``) is refused too: accepted and
ignored, it would silently change a program's meaning.
"""

from __future__ import annotations

import warnings
from typing import Any

_MISSING = object()

#: Run options of LangGraph's invoke/stream with no effect here at these values, and
#: why any other value is refused.
_INERT_RUN_OPTIONS: dict[str, tuple[tuple, str]] = {
    "print_mode": (((), [], None, ""), "print the chunks of stream() yourself"),
    "output_keys": ((None,), "an entrypoint returns one value, not channels to pick from"),
    "interrupt_before": ((None, (), []), "call interrupt() in the body or in a task"),
    "interrupt_after": ((None, (), []), "call interrupt() in the body or in a task"),
    "control": ((None,), "LangGraph's run control has no counterpart here"),
    "debug": ((None, False), "use stream_mode='debug'"),
}

#: Which release of the contract brings each parameter not built yet.
PLANNED = {
    "store": "LangGraph's long-term memory store",
}


def renamed(kwargs: dict, old: str, new: str, current: Any) -> Any:
    """``current``, or the value of LangGraph's deprecated ``old`` keyword (popped from
    ``kwargs``) when ``current`` is None; warns as LangGraph does."""
    value = kwargs.pop(old, _MISSING)
    if value is _MISSING:
        return current
    warnings.warn(
        f"`{old}` is deprecated and will be removed. Please use `{new}` instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    return value if current is None else current


def refuse_unknown(where: str, kwargs: dict) -> None:
    if kwargs:
        raise TypeError(f"{where}() got unexpected keyword arguments: {sorted(kwargs)}")


def drop_inert_run_options(method: str, kwargs: dict) -> None:
    """Remove LangGraph's run options left at their "off" value from ``kwargs``;
    refuse one set to anything else, naming it."""
    for name in [name for name in kwargs if name in _INERT_RUN_OPTIONS]:
        value = kwargs.pop(name)
        off, reason = _INERT_RUN_OPTIONS[name]
        if not any(value == inert for inert in off):
            raise NotImplementedError(
                f"{method}({name}={value!r}) is not supported by paralleltask: {reason}"
            )


def refuse(where: str, **values: Any) -> None:
    """Raise NotImplementedError for the first of ``values`` that is set."""
    for parameter, value in values.items():
        if value is not None:
            raise NotImplementedError(
                f"{where}({parameter}=...) is not supported by this version of "
                f"paralleltask: it arrives with {PLANNED[parameter]}. Leave it unset "
                "(or keep this program on langgraph.func until then); paralleltask "
                "refuses it rather than silently ignoring it."
            )
