"""The stored value format: a stamp, an authentication tag, then the pickle.

    b"PT1" | HMAC-SHA256(key, stamp + payload) (32 bytes) | payload (pickle)

Loading a pickle runs code, so a store is as trusted as code: a value whose tag does
not verify (a store copied from another machine or user, or tampered with) is refused
*before* anything is unpickled. The key comes from ``PARALLELTASK_STORE_KEY`` or from a
key file created owner-only outside any store (``~/.config/paralleltask/store.key``,
or ``$PARALLELTASK_KEY_FILE``). The format stamp lets a later version refuse, rather
than misread, values written in another format.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from typing import Any

from .. import serde

STAMP = b"PT1"
TAG_SIZE = 32
KEY_ENV = "PARALLELTASK_STORE_KEY"
KEY_FILE_ENV = "PARALLELTASK_KEY_FILE"


class UnverifiedValue(Exception):
    """A stored value has no valid format stamp or authentication tag."""


def default_key_file() -> str:
    return os.environ.get(KEY_FILE_ENV) or os.path.join(
        os.path.expanduser("~"), ".config", "paralleltask", "store.key"
    )


def load_key() -> bytes:
    """The key that signs stored values: from the environment, or the owner-only key
    file (created on first use)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return hashlib.sha256(from_env.encode()).digest()
    path = default_key_file()
    try:
        with open(path, "rb") as f:
            key = f.read()
    except FileNotFoundError:
        key = _create_key_file(path)
    if len(key) < 32:
        raise ValueError(f"the paralleltask key file {path} is too short (corrupt?)")
    return key


def _create_key_file(path: str) -> bytes:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        with open(path, "rb") as f:
            return f.read()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


try:  # hmac.digest's own C function, without its Python wrapper (the cache-hit path)
    from _hashlib import hmac_digest as _c_hmac_digest

    def _hmac_sha256(key: bytes, message: bytes) -> bytes:
        return _c_hmac_digest(key, message, "sha256")
except ImportError:  # pragma: no cover - Pythons without OpenSSL's _hashlib

    def _hmac_sha256(key: bytes, message: bytes) -> bytes:
        return hmac.digest(key, message, "sha256")


def seal(key: bytes, value: Any, pickled: bytes | None = None) -> bytes:
    """``value`` as stored bytes (cloudpickle, stamped and tagged); ``pickled``: its
    pickle already made (a worker's result bytes), which saves pickling it again."""
    payload = serde.dumps(value) if pickled is None else pickled
    return STAMP + hmac.digest(key, STAMP + payload, "sha256") + payload


def open_sealed(key: bytes, data: bytes) -> Any:
    """The value in ``data``; :class:`UnverifiedValue` before unpickling if it does not
    verify; the unpickling error itself if it verifies but will not load."""
    if data[:3] != STAMP or len(data) < 3 + TAG_SIZE:
        raise UnverifiedValue("not a paralleltask value (unknown format stamp)")
    payload = data[3 + TAG_SIZE :]
    expected = _hmac_sha256(key, STAMP + payload)
    if not hmac.compare_digest(expected, data[3 : 3 + TAG_SIZE]):
        raise UnverifiedValue("authentication tag does not verify (foreign or tampered)")
    return pickle.loads(payload)
