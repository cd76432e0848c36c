"""A run's config and options as LangGraph reads them, checked before the run starts.

``invoke``/``stream``/``batch`` take LangGraph's RunnableConfig and options; this module
merges configs (``with_config``'s under the call's), completes the config the run's code
sees, coerces ``context``, and refuses what a call cannot mean, with LangGraph's errors.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import Any

from ._compat import drop_inert_run_options
from ._stream import normalize_modes

DURABILITIES = ("sync", "async", "exit")


def check_call(
    where: str, bound: dict | None, config: Any, durability: str | None, kwargs: dict
) -> tuple[Any, str | None]:
    """Refuse what the call ``where`` (``"name.method"``) cannot mean; the call's config
    (over ``bound``, the one bound by ``with_config``) and durability (LangGraph's
    deprecated ``checkpoint_during=`` still names one)."""
    checkpoint_during = kwargs.pop("checkpoint_during", None)
    if checkpoint_during is not None:
        warnings.warn(  # stacklevel 3: the caller of invoke() & co., which call this
            "`checkpoint_during` is deprecated and will be removed. Please use "
            "`durability` instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        if durability is not None:
            raise ValueError(
                "Cannot use both `checkpoint_during` and `durability` parameters. "
                "Please use `durability` instead."
            )
        durability = "async" if checkpoint_during else "exit"
    check_durability(durability)
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict (a RunnableConfig), got {config!r}")
    if bound is not None:
        config = merged_config(bound, config)
    limit = (config or {}).get("recursion_limit")
    if limit is not None and limit < 1:  # (a str fails this comparison: TypeError)
        raise ValueError("recursion_limit must be at least 1")
    drop_inert_run_options(where, kwargs)
    if kwargs:
        raise TypeError(f"{where}() got unsupported keyword arguments: {sorted(kwargs)}")
    return config, durability


def check_durability(durability: str | None) -> str:
    if durability is None:
        return "async"
    if durability not in DURABILITIES:
        raise ValueError(f"durability must be one of {DURABILITIES}, got {durability!r}")
    return durability


def thread_id_of(config: dict | None, reading: bool = False) -> str:
    """The config's ``thread_id``, or LangGraph's error without one: a ValueError
    naming the keys when a run has no ``configurable`` at all, else KeyError."""
    configurable = (config or {}).get("configurable")
    if not configurable and not reading:
        raise ValueError(
            "Checkpointer requires one or more of the following 'configurable' keys: "
            "thread_id, checkpoint_ns, checkpoint_id"
        )
    if configurable is None:
        raise KeyError("configurable")
    if configurable.get("thread_id") is None:
        raise KeyError("thread_id")
    return str(configurable["thread_id"])


#: Config keys LangGraph leaves out of a checkpoint's metadata.
_UNRECORDED_KEYS = frozenset(
    {
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "checkpoint_map",
        "langgraph_step",
        "langgraph_node",
        "langgraph_triggers",
        "langgraph_path",
        "langgraph_checkpoint_ns",
    }
)


def config_metadata(config: dict | None) -> dict:
    """What a run's config adds to its checkpoints' metadata, by LangGraph's rules: the
    config's ``metadata``, then its ``configurable``, scalar values only (the first of a
    key wins), none of LangGraph's own keys nor those starting with ``__``."""
    recorded: dict = {}
    for source in ((config or {}).get("metadata"), (config or {}).get("configurable")):
        for key, value in (source or {}).items():
            if key in recorded or key in _UNRECORDED_KEYS or key.startswith("__"):
                continue
            if isinstance(value, str):
                recorded[key] = value.replace("\u0000", "")
            elif isinstance(value, (int, bool, float)):
                recorded[key] = value
    return recorded


def merged_config(base: dict | None, extra: dict | None) -> dict | None:
    """``extra`` over ``base``, as LangGraph merges configs: ``configurable`` and
    ``metadata`` key by key, ``tags`` appended (each once), any other key replaced."""
    if not base:
        return extra
    if extra is None:
        return dict(base)
    merged = {**base, **extra}
    for key in ("configurable", "metadata"):
        if key in base or key in extra:
            merged[key] = {**(base.get(key) or {}), **(extra.get(key) or {})}
    if "tags" in base or "tags" in extra:
        tags = list(base.get("tags") or [])
        merged["tags"] = tags + [tag for tag in extra.get("tags") or [] if tag not in tags]
    return merged


def batch_configs(inputs: list, config: Any) -> list:
    if isinstance(config, list):
        if len(config) != len(inputs):
            raise ValueError(
                "config must be a list of the same length as inputs, but got "
                f"{len(config)} configs for {len(inputs)} inputs"
            )
        return config
    return [config] * len(inputs)


def coerced_context(schema: Any, context: Any) -> Any:
    """LangGraph's rule: a dict context becomes ``context_schema`` when that is a
    dataclass or a pydantic model; anything else is passed as it is."""
    if context is None or schema is None or not isinstance(context, dict):
        return context
    pydantic = sys.modules.get("pydantic")  # loaded already if the schema is a model
    is_model = pydantic is not None and isinstance(schema, type)
    if dataclasses.is_dataclass(schema) or (is_model and issubclass(schema, pydantic.BaseModel)):
        return schema(**context)
    return context


def refuse_v2_values(version: str) -> None:
    check_version(version)
    if version == "v2":
        raise NotImplementedError(
            "invoke(version='v2') with stream_mode='values' returns LangGraph's GraphOutput, "
            "which paralleltask does not have; use version='v1' or another stream_mode"
        )


def stream_options(stream_mode: Any, subgraphs: bool, version: str) -> tuple[tuple, bool]:
    if subgraphs:
        raise NotImplementedError(
            "stream(subgraphs=True) is not supported: paralleltask streams the chunks of "
            "nested runs in the parent run's stream, without namespaces"
        )
    check_version(version)
    return normalize_modes("updates" if stream_mode is None else stream_mode)


def check_version(version: str) -> None:
    if version not in ("v1", "v2"):
        raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")


#: A RunnableConfig's own keys; LangGraph moves any other top-level key into
#: ``configurable`` (so ``{"thread_id": ...}`` at the top level names the thread).
CONFIG_KEYS = frozenset(
    {
        "tags",
        "metadata",
        "callbacks",
        "run_name",
        "max_concurrency",
        "recursion_limit",
        "configurable",
        "run_id",
    }
)

#: ``configurable`` keys LangGraph copies into the run's ``metadata``.
PROPAGATED_TO_METADATA = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "run_id",
    "graph_id",
    "assistant_id",
)


def run_config(config: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The config a run's code sees: the caller's, with LangGraph's keys present."""
    config = config or {}
    merged = {key: value for key, value in config.items() if key in CONFIG_KEYS}
    merged["configurable"] = dict(merged.get("configurable") or {})
    for key, value in config.items():
        if key not in CONFIG_KEYS and value is not None:
            merged["configurable"][key] = value
    metadata = dict(merged.get("metadata") or {})
    for key in PROPAGATED_TO_METADATA:  # as LangGraph's ensure_config copies them
        value = merged["configurable"].get(key)
        if value and key not in metadata:
            metadata[key] = value
    merged["metadata"] = {**metadata, "langgraph_node": name}
    merged.setdefault("callbacks", None)
    return merged
