"""Refusing, clearly, the parameters of the public contract that are not built yet.

A parameter accepted and ignored would silently change a program's meaning (a retry
policy that never retries, a checkpointer that saves nothing), so until it is built
each one is refused with the name of the parameter and what to do meanwhile.
"""

from __future__ import annotations

from typing import Any

#: Which release of the contract brings each parameter.
PLANNED = {
    "store": "LangGraph's long-term memory store",
}


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
