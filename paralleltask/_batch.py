"""Many inputs at once (LangChain's ``Runnable.batch``, which LangGraph's entrypoints have).

Each input is a run of its own, side by side: ``batch`` runs them in threads (their task
calls share the pool), ``abatch`` as coroutines on the caller's loop; results come in
input order, and ``max_concurrency`` in the (first) config caps the runs at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Awaitable, Callable
from typing import Any

from ._run_config import batch_configs


def batch(
    invoke: Callable[[Any, Any], Any],
    inputs: list[Any],
    config: Any,
    return_exceptions: bool,
    thread_name_prefix: str,
) -> list[Any]:
    """``invoke(input, config)`` for each input, in threads of a pool of its own."""
    configs = batch_configs(inputs, config)
    if not inputs:
        return []

    def one(pair: tuple[Any, Any]) -> Any:
        try:
            return invoke(pair[0], pair[1])
        except Exception as exc:
            if return_exceptions:
                return exc
            raise

    most = (configs[0] or {}).get("max_concurrency") or min(32, len(inputs))
    with cf.ThreadPoolExecutor(most, thread_name_prefix=thread_name_prefix) as runs:
        return list(runs.map(one, zip(inputs, configs, strict=True)))


async def abatch(
    ainvoke: Callable[[Any, Any], Awaitable[Any]],
    inputs: list[Any],
    config: Any,
    return_exceptions: bool,
) -> list[Any]:
    """``await ainvoke(input, config)`` for each input, concurrently on this loop."""
    configs = batch_configs(inputs, config)
    most = (configs[0] or {}).get("max_concurrency") if configs else None
    gate = asyncio.Semaphore(most) if most else None

    async def one(input: Any, config: Any) -> Any:
        if gate is None:
            return await ainvoke(input, config)
        async with gate:  # at most `most` runs at once
            return await ainvoke(input, config)

    runs = [one(input, config) for input, config in zip(inputs, configs, strict=True)]
    return await asyncio.gather(*runs, return_exceptions=return_exceptions)
