"""Which parameters of a body or task LangGraph fills in, and filling them in.

LangGraph injects ``config``, ``writer``, ``store``, ``previous`` and ``runtime`` by
name, for some only with a matching annotation (``config: RunnableConfig``,
``writer: StreamWriter``, ``store: BaseStore``), into entrypoint bodies and task
functions alike, unless the caller passed the argument. Same rules here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .types import StreamWriter

if TYPE_CHECKING:
    from ._run import Run

_VALID_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_EMPTY = inspect.Parameter.empty

#: Accepted annotations, by parameter; None: any annotation.
_ANNOTATIONS: dict[str, tuple[str, ...] | None] = {
    "config": ("RunnableConfig", "Optional[RunnableConfig]", "RunnableConfig | None"),
    "writer": ("StreamWriter",),
    "store": ("BaseStore", "Optional[BaseStore]", "BaseStore | None"),
    "previous": None,
    "runtime": None,
}


def injected_parameters(func: Callable[..., Any], skip_first: bool = False) -> tuple[str, ...]:
    """The names LangGraph would inject into ``func`` (after its input, if ``skip_first``)."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # a builtin or an object without a signature
        return ()
    if skip_first:
        parameters = parameters[1:]
    names = []
    for parameter in parameters:
        accepted = _ANNOTATIONS.get(parameter.name, ())
        if parameter.kind not in _VALID_KINDS or accepted == ():
            continue
        if accepted is None or _annotation_matches(parameter, accepted):
            names.append(parameter.name)
    return tuple(names)


def _annotation_matches(parameter: inspect.Parameter, accepted: tuple[str, ...]) -> bool:
    annotation = parameter.annotation
    if annotation is _EMPTY:
        return True
    if parameter.name == "writer" and annotation == StreamWriter:
        return True
    text = annotation if isinstance(annotation, str) else _type_text(annotation)
    return text.replace("typing.", "") in accepted


def _type_text(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name is not None and getattr(annotation, "__args__", None) is None:
        return name
    text = repr(annotation)
    for module in ("langchain_core.runnables.config.", "langgraph.store.base.", "langgraph.types."):
        text = text.replace(module, "")
    return text


def injections(run: Run, names: tuple[str, ...], passed: dict[str, Any]) -> dict[str, Any]:
    """Values for ``names`` from ``run``, except those the caller passed."""
    values = {}
    for name in names:
        if name in passed:
            continue
        if name == "config":
            values[name] = run.config()
        elif name == "writer":
            values[name] = run.writer
        elif name == "previous":
            values[name] = run.info.previous
        elif name == "runtime":
            values[name] = run.runtime()
        else:  # "store": none until LangGraph's store is supported
            values[name] = None
    return values
