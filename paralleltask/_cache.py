"""Cache keys: a task's identity (its code included) plus its ``key_func`` output, hashed.

The identity is the module, qualified name, ``name=`` and a hash of the function's code
(bytecode, constants, names: not line numbers), so editing a function invalidates its
entries, as joblib.Memory does (LangGraph keys by name only). Keys are 32 bytes: 16 of
identity, then 16 of the argument key, so one task's entries share a prefix (cleared
together) and LMDB's 511-byte key limit never bites. Cloudpickle bytes are never hashed
(they are not deterministic).

The default ``key_func`` already returns a sha256 digest (of the frozen arguments'
pickle, hashed in place, large payloads through xxh3-128: ``paralleltask._keyhash``): its
first 16 bytes are the argument key as they are, the same bytes as when that pickle was
built and hashed here, so a store's entries keyed before keep their keys (those of
arguments with payloads of 64 KiB or more changed once, when xxh3 came in). Any other
``key_func``'s output is hashed.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any

from .types import CachePolicy, default_cache_key


def as_cache_policy(value: Any, where: str) -> Any:
    """Ours or LangGraph's (anything with ``key_func`` and ``ttl``), checked; or None."""
    if value is None:
        return None
    key_func, ttl = getattr(value, "key_func", None), getattr(value, "ttl", "missing")
    if not callable(key_func) or ttl == "missing":
        raise TypeError(f"{where}(cache_policy=...) takes a CachePolicy, got {value!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise TypeError(f"CachePolicy.ttl must be seconds (a number) or None, got {ttl!r}")
    if ttl is not None and ttl <= 0:
        raise ValueError(f"CachePolicy.ttl must be positive or None, got {ttl!r}")
    return value if isinstance(value, CachePolicy) else CachePolicy(key_func, ttl)


def identity_prefix(func: Callable[..., Any], name: str) -> bytes:
    """16 bytes naming a task (or entrypoint) and the code it runs."""
    target = getattr(func, "func", func)  # a functools.partial's function
    digest = hashlib.sha256()
    for part in (getattr(target, "__module__", ""), getattr(target, "__qualname__", ""), name):
        digest.update(str(part).encode() + b"\0")
    call_method = getattr(type(target), "__call__", None)  # noqa: B004 - a callable object
    code = getattr(target, "__code__", None) or getattr(call_method, "__code__", None)
    if code is not None:
        _hash_code(digest, code)
    return digest.digest()[:16]


def _hash_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    digest.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(digest, const)
        else:
            digest.update(repr(const).encode())


def entry_key(prefix: bytes, policy: CachePolicy, args: tuple, kwargs: dict) -> bytes:
    """The store key of one call: identity prefix + hash of ``key_func``'s output."""
    key = policy.key_func(*args, **kwargs)
    if policy.key_func is default_cache_key:  # sha256 of the frozen arguments' pickle
        return prefix + key[:16]
    if isinstance(key, str):
        key = key.encode()
    elif not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"cache key_func must return str or bytes, got {type(key).__name__}")
    return prefix + hashlib.sha256(key).digest()[:16]
