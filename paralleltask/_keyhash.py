"""The default cache key's hash: a pickle (protocol 5) streamed into sha256, never joined.

``pickle.Pickler`` writes to a file in frames of about 64 KiB, and hands a ``bytes``,
``bytearray``, ``PickleBuffer`` (or large ``str``'s UTF-8) payload of 64 KiB or more
(``IN_PLACE_MIN``, pickle's frame size target) to the file's ``write`` on its own, out
of frame and uncopied, right after the opcode and length that announce it. Here the
file's ``write`` feeds the hash, so the pickle is never one bytes object, and:

- a payload written out of frame is hashed where it lies with xxh3-128 (``xxhash``,
  about 10x sha256's speed; like ``hashlib`` it drops the GIL while it hashes a large
  input), and its 16-byte digest goes into the sha256 stream in place of the payload;
- everything else (the frames, whatever their size, and the opcodes) goes into sha256
  as it is.

So the digest of an object with no payload of ``IN_PLACE_MIN`` bytes or more is still
``sha256(pickle.dumps(obj, protocol=5, fix_imports=False))``, the key it had before xxh3
came in: its stored cache entries are still hit. The key of arguments with a large
payload changed once, when xxh3 came in: their entries stored before are missed (and
made again) once.

Which payloads go out of frame depends on their size alone, so equal pickles are hashed
alike; the announcing length precedes the digest in the stream, so the substitution is
unambiguous. A frame is told from a payload by its shape: a ``bytes`` write that opens
with the FRAME opcode (after PROTO, for a dump's first) and holds the length it states,
plus at most the next payload's header. A payload that happens to open like that is
hashed as it is: the same key every time, only slower.

xxh3 is not a cryptographic hash (it is not built to resist collisions crafted on
purpose): a key tells apart the large arguments of honest callers, not an adversary's.

This module sits at the bottom of the package's layers: the standard library and
xxhash only.
"""

from __future__ import annotations

import collections
import copyreg
import hashlib
import sys
import threading
from pickle import PickleBuffer, Pickler
from typing import Any

from xxhash import xxh3_128

#: pickle's frame size target: a smaller payload is copied into a frame (so copied out
#: too); one of this size or more is written out of frame, uncopied.
IN_PLACE_MIN = 64 * 1024

#: What may follow a frame in one write: nothing, or the header of a payload written out
#: of frame next (BINBYTES, BINUNICODE: 1 + 4 bytes; BINBYTES8, BINUNICODE8, BYTEARRAY8:
#: 1 + 8 bytes).
_AFTER_FRAME = (0, 5, 9)


def _is_frame(data: bytes) -> bool:
    """Whether a large ``bytes`` write is a pickle frame (not a payload out of frame)."""
    start = 2 if data[0] == 0x80 else 0  # PROTO opens a dump's first write
    if data[start] != 0x95:  # FRAME, then the frame's length (8 bytes, little-endian)
        return False
    size = int.from_bytes(data[start + 1 : start + 9], "little")
    return len(data) - start - 9 - size in _AFTER_FRAME


class _HashWriter:
    """A write-only file feeding a hash (the one of the key being made): a payload out of
    frame goes in as its xxh3-128 digest, everything else as it is."""

    __slots__ = ("digest",)

    def write(self, data: Any, _small: int = IN_PLACE_MIN) -> None:
        try:  # the hot path: under _small, a write is pickle's own frame and opcodes
            if len(data) < _small:
                return self.digest.update(data)
        except TypeError:  # a PickleBuffer has no len(): a payload, as a bytearray is
            pass
        if type(data) is not bytes or not _is_frame(data):
            # xxh3_128(), not the one-shot xxh3_128_digest (which holds the GIL before
            # xxhash 4.0): it drops the GIL while it hashes (since 4.0, above 64 KiB)
            data = xxh3_128(data).digest()
        self.digest.update(data)


class _KeyPickler(Pickler):
    """copyreg's reducers, looked up live, a memoryview's (pickle refuses those) and,
    once numpy is imported, a plain ndarray's (its writeable flag left out)."""

    dispatch_table = collections.ChainMap({}, copyreg.dispatch_table)


_local = threading.local()  # one pickler per thread, reused: a fresh one costs ~0.5 µs


def pickle_digest(obj: Any) -> bytes:
    """The sha256 digest (32 bytes) of ``pickle.dumps(obj, protocol=5, fix_imports=False)``
    with each payload of ``IN_PLACE_MIN`` bytes or more replaced by its xxh3-128 digest
    (16 bytes), without building the pickle: large payloads are hashed in place. With no
    such payload, that is ``sha256(pickle.dumps(obj, protocol=5, fix_imports=False))``."""
    digest = hashlib.sha256()
    kept = getattr(_local, "kept", None)
    if kept is None:  # this thread's first key, or the last one failed midway
        writer = _HashWriter()
        kept = _local.kept = [_KeyPickler(writer, protocol=5, fix_imports=False), writer, False]
    pickler, writer, busy = kept
    if busy:  # a key made while this thread makes one (inside a reducer): a pickler of its own
        writer = _HashWriter()
        writer.digest = digest
        _KeyPickler(writer, protocol=5, fix_imports=False).dump(obj)
        return digest.digest()
    if _numpy_unregistered and "numpy" in sys.modules:
        _register_ndarray()
    writer.digest = digest
    kept[2] = True
    try:
        pickler.dump(obj)
    except BaseException:
        _local.kept = None  # its frames may be half written: the next key makes a new one
        raise
    finally:
        kept[2] = False
        pickler.clear_memo()  # after, not before: the memo holds the key's arguments
    return digest.digest()


_numpy_unregistered = True


def _register_ndarray() -> None:
    """Key a plain ndarray by its type, dtype, shape and data (numpy's own reduce writes a
    read-only array's data as bytes and a writable one's as a bytearray: two keys)."""
    global _numpy_unregistered
    _KeyPickler.dispatch_table.maps[0][sys.modules["numpy"].ndarray] = _reduce_ndarray
    _numpy_unregistered = False


def _reduce_ndarray(obj: Any) -> tuple:
    dtype = obj.dtype
    if dtype.hasobject:  # its data would be the objects' addresses: its elements instead
        return _ndarray, (dtype.str, obj.shape, obj.tolist())
    return _ndarray, (dtype.descr if dtype.fields else dtype.str, obj.shape, array_data(obj))


def _ndarray(dtype: Any, shape: tuple, data: Any) -> Any:
    """What a keyed ndarray would load as (keys are never loaded)."""
    numpy = sys.modules["numpy"]
    return numpy.frombuffer(bytes(data), dtype=numpy.dtype(dtype)).reshape(shape)


def array_data(obj: Any) -> Any:
    """The data of a numpy array (or another object with ``tobytes``) for a key: pickled,
    the same bytes as ``obj.tobytes()``. A large C-contiguous ndarray's memory is lent
    (a read-only ``PickleBuffer``, hashed in place); anything else is ``obj.tobytes()``,
    a copy: Fortran-ordered and strided arrays are copied into C order, so that an array
    has the key of its values whatever its layout."""
    numpy = sys.modules.get("numpy")
    if numpy is None or getattr(type(obj), "tobytes", None) is not numpy.ndarray.tobytes:
        return obj.tobytes()  # not a plain ndarray (a masked array fills its mask in)
    if obj.nbytes < IN_PLACE_MIN or not obj.flags.c_contiguous:
        return obj.tobytes()
    try:
        view = memoryview(obj)
    except (TypeError, ValueError, BufferError):  # datetime64 has no buffer
        return obj.tobytes()
    return PickleBuffer(view.toreadonly())


def _reduce_memoryview(view: memoryview) -> tuple:
    """A memoryview as its bytes, format and shape (its bytes in place when large and
    C-contiguous); pickle refuses memoryviews, a key needs only to tell them apart."""
    if view.nbytes >= IN_PLACE_MIN and view.c_contiguous:
        data: Any = PickleBuffer(view.toreadonly())
    else:
        data = view.tobytes()  # C order, a copy
    return _memoryview, (data, view.format, view.shape)


def _memoryview(data: Any, format: str, shape: tuple) -> memoryview:
    """What a pickled memoryview of a key would load as (keys are never loaded)."""
    return memoryview(bytes(data)).cast(format, shape)


_KeyPickler.dispatch_table.maps[0][memoryview] = _reduce_memoryview
