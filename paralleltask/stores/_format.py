"""The stored value format: a stamp, an authentication tag, then the pickle.

    b"PT1" | HMAC-SHA256(key, stamp + payload) (32 bytes) | payload (pickle)

Loading a pickle runs code, so a store is as trusted as code: a value whose tag does
not verify (a store copied from another machine or user, or tampered with) is refused
*before* anything is unpickled. The key comes from ``PARALLELTASK_STORE_KEY`` or from a
key file created owner-only outside any store (``~/.config/paralleltask/store.key``,
or ``$PARALLELTASK_KEY_FILE``). The format stamp lets a later version refuse, rather
than misread, values written in another format.

The key file is guarded as ssh guards a private key: it is created whole or not at all
(a temporary file, fsync'd, then linked into place), and one that is a symbolic link,
that another user owns, or that the group or others may read or write is refused with
how to fix it: whoever can read it can forge values that this process will unpickle.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import stat
from typing import Any

from .. import _serde
from ..errors import StoreError

STAMP = b"PT1"
TAG_SIZE = 32
KEY_SIZE = 32
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
    file (created on first use). :class:`StoreError` (``path``: the key file) when the
    key file is unsafe, damaged or cannot be created."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return hashlib.sha256(from_env.encode()).digest()
    path = default_key_file()
    key = _read_key_file(path)
    return key if key is not None else _create_key_file(path)


def _key_error(path: str, problem: str, fix: str) -> StoreError:
    return StoreError(
        f"the paralleltask key file {path} {problem}. {fix} Or set {KEY_ENV} (a secret "
        f"of your own) or {KEY_FILE_ENV} (another key file) instead.",
        path=path,
    )


def _read_key_file(path: str) -> bytes | None:
    """The key in ``path``; ``None`` when there is no such file. Refuses a file that
    anyone but its owner could read or change, or that is not ours or not a file."""
    try:
        # O_NOFOLLOW: a symbolic link put there (now, or between a check and the open)
        # fails the open itself, so no check-then-open race lets one through.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise _key_error(
                path,
                "is a symbolic link",
                f"A key must be a plain file of yours: remove the link (rm {path}) and a "
                "new key is made, or copy the key it points to in its place "
                "(chmod 600 afterwards).",
            ) from None
        raise _key_error(path, f"cannot be read ({exc})", "Check its permissions.") from exc
    with os.fdopen(fd, "rb") as f:
        _check_key_file(path, os.fstat(f.fileno()))
        key = f.read()
    if len(key) < KEY_SIZE:
        # Never made a new key over it: values stored under the key it held would be
        # orphaned, and a file cut short is the owner's to look at, not ours to replace.
        # (Keys are made whole by _create_key_file; a short one is damage, or a crash of
        # a version that wrote the file in place.)
        raise _key_error(
            path,
            f"holds {len(key)} bytes, not a {KEY_SIZE}-byte key (emptied or cut short, "
            "e.g. by a crash while an older paralleltask created it)",
            "Values stored under the key it held cannot be verified without it: restore "
            f"it from a copy if you have one; otherwise remove it (rm {path}) and a new key "
            "is made (values signed with the old key will be misses or refused).",
        )
    return key


def _check_key_file(path: str, st: os.stat_result) -> None:
    """Refuse a key file that is not a plain file, not ours, or open to others."""
    if not stat.S_ISREG(st.st_mode):
        raise _key_error(path, "is not a regular file", f"Remove it (rm {path}).")
    if st.st_uid != os.geteuid():
        raise _key_error(
            path,
            f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}): its owner can "
            "forge values that you would unpickle",
            f"Remove it (rm {path}) and a new key is made, or take it over "
            f"(chown {os.geteuid()} {path}; chmod 600 {path}) if you trust its owner.",
        )
    if st.st_mode & 0o077:
        raise _key_error(
            path,
            f"can be read or written by the group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): whoever can read it can forge values that "
            "you would unpickle",
            f"Make it yours alone: chmod 600 {path} (and consider it leaked: remove it "
            "for a new key if others may have read it).",
        )


def _create_key_file(path: str) -> bytes:
    """Make a new key file whole, or use the one another process made first.

    The key is written to a temporary file in the same folder and fsync'd, then
    ``os.link``ed to ``path``: the link appears complete or not at all, so no reader
    ever sees a partial key and a crash leaves no empty key file (at most a stray
    temporary file)."""
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        key = secrets.token_bytes(KEY_SIZE)
        temporary = _write_temporary(folder, key)
    except OSError as exc:
        raise StoreError(
            f"cannot create the paralleltask key file {path} ({exc.strerror or exc}): set "
            f"{KEY_ENV} (a secret of your own) or point {KEY_FILE_ENV} at a file in a "
            "writable folder.",
            path=path,
        ) from exc
    try:
        os.link(temporary, path)
    except FileExistsError:
        # Race: another process linked its key first. Use theirs, so every process
        # signs with one key; it is complete, since it was linked whole.
        theirs = _read_key_file(path)
        if theirs is None:  # linked and removed again meanwhile: start over
            return _create_key_file(path)
        return theirs
    except OSError as exc:
        raise StoreError(
            f"cannot create the paralleltask key file {path} ({exc.strerror or exc}): set "
            f"{KEY_ENV} or {KEY_FILE_ENV} instead.",
            path=path,
        ) from exc
    finally:
        os.unlink(temporary)
    _fsync_folder(folder)  # the new name survives a crash, as the key's bytes do
    return key


def _write_temporary(folder: str, key: bytes) -> str:
    """A new owner-only file in ``folder`` holding ``key``, on disk (fsync'd)."""
    temporary = os.path.join(folder, f".store.key.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    return temporary


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a folder we just linked into but cannot open
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems that refuse fsync on folders
        pass
    finally:
        os.close(fd)


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
    payload = _serde.dumps(value) if pickled is None else pickled
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
