"""The default cache key's hash: a pickle (protocol 5) streamed into sha256, never joined.

``pickle.Pickler`` writes to a file in frames of about 64 KiB, and hands a ``bytes``,
``bytearray`` or ``PickleBuffer`` payload of 64 KiB or more to the file's ``write`` as
it is, without copying it into a frame. Here the file's ``write`` is the hash's
``update``, so a large payload is hashed where it lies (``hashlib`` drops the GIL while
it does) and the pickle is never one bytes object. What is hashed is exactly the bytes
``pickle.dumps(obj, protocol=5, fix_imports=False)`` returns, so the digest is theirs.

Standard library only: this module sits at the bottom of the package's layers.
"""

from __future__ import annotations

import collections
import copyreg
import hashlib
import sys
import threading
from pickle import PickleBuffer, Pickler
from typing import Any

#: Below this size a payload is copied into a pickle frame anyway: it is copied out too.
IN_PLACE_MIN = 64 * 1024


class _HashWriter:
    """A write-only file feeding a hash (the one of the key being made)."""

    __slots__ = ("digest",)

    def write(self, data: Any) -> None:
        self.digest.update(data)


class _KeyPickler(Pickler):
    """copyreg's reducers, looked up live, and a memoryview's (pickle refuses those)."""

    dispatch_table = collections.ChainMap({}, copyreg.dispatch_table)


_local = threading.local()  # one pickler per thread, reused: a fresh one costs ~0.5 µs


def pickle_digest(obj: Any) -> bytes:
    """``sha256(pickle.dumps(obj, protocol=5, fix_imports=False)).digest()``, without
    building those bytes: large payloads are hashed in place."""
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
    writer.digest = digest
    kept[2] = True
    try:
        pickler.clear_memo()
        pickler.dump(obj)
    except BaseException:
        _local.kept = None  # its frames may be half written: the next key makes a new one
        raise
    finally:
        kept[2] = False
    return digest.digest()


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
