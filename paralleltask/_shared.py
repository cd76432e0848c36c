"""``shared(array)``: an array placed in shared memory once, handed to many calls by reference.

A call's large buffers are copied once per call (``_buffers.py``): what the worker sees
is the value as it was when the call was made, whatever the caller does to it after.
An array handed to many calls pays that copy each time (a 200 MB array to 8 calls: 8
copies). :func:`shared` copies it once into an anonymous shared-memory file and returns
a read-only array over it; a call handed that array, or any contiguous view of it,
sends the file's descriptor and where the view lies in it, not its bytes. Nothing can
write to that memory (it is mapped read-only on every side), so no copy is needed for a
call to see the value it was given: the same guarantee, without the copy, as
``ray.put``'s object store. The memory is freed when the array and every view of it are
gone, and no call in flight holds it.
"""

from __future__ import annotations

import mmap
import os
import sys
import weakref
from typing import TypeVar

from . import _buffers

ArrayT = TypeVar("ArrayT")


class SharedSegment:
    """The anonymous file holding one shared array: its descriptor (sent with every
    call that hands the array to a worker) and its address in this process."""

    __slots__ = ("__weakref__", "address", "fd", "size")

    def __init__(self, fd: int, address: int, size: int) -> None:
        self.fd = fd
        self.address = address
        self.size = size

    def sending(self) -> None:
        """(A copied segment counts the workers that map it; this one is never reused.)"""

    def released(self) -> None:
        """(See :meth:`sending`.)"""

    def close(self) -> None:
        """(A message's segment is closed once sent; this one belongs to its array, and
        is closed when collected: a result that holds a shared array made in a worker
        goes out again the next time it is returned.)"""

    def __del__(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def shared(array: ArrayT) -> ArrayT:
    """A read-only copy of the numpy ``array`` in shared memory, made once: a task call
    handed it (or a contiguous slice of it) on a ``ProcessExecutor`` sends a reference,
    not a copy, however many calls get it and however large it is. Write to the copy and
    numpy refuses ("assignment destination is read-only"); the original is untouched
    and may be dropped. Calling ``shared`` on a shared array returns it as it is.

    Out-of-band transport is Linux-only: elsewhere, and with
    ``ProcessExecutor(buffer_threshold=None)``, the copy is read-only all the same and
    each call pickles it as any array.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(array, numpy.ndarray):
        raise TypeError(
            f"shared() takes a numpy array, not {type(array).__name__} (bytes: "
            "numpy.frombuffer(data, dtype=numpy.uint8))"
        )
    if type(array) is not numpy.ndarray and not isinstance(array, numpy.memmap):
        raise TypeError(
            f"shared() takes a plain numpy array, not a {type(array).__name__}: the copy "
            "would lose what the subclass adds (a masked array's mask); place its parts "
            "(say .data and .mask) one by one"
        )
    if array.dtype.hasobject:
        raise TypeError(
            f"shared() cannot place an array of dtype {array.dtype}: it holds references "
            "to Python objects, which do not live in shared memory"
        )
    contiguous = array.flags.c_contiguous or array.flags.f_contiguous
    if contiguous and type(array) is numpy.ndarray and _buffers.placed_span(array) is not None:
        return array  # (a view of a shared array: read-only, and sent by reference)
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    if not _buffers.SUPPORTED or array.nbytes == 0:
        copy = array.copy(order=order)
        copy.flags.writeable = False
        return copy
    data = numpy.asarray(array, order=order)
    fd = os.memfd_create("paralleltask-shared", os.MFD_CLOEXEC)
    try:
        _buffers.write_all(fd, memoryview(data.reshape(-1, order="A").view(numpy.uint8)), 0)
        mapping = mmap.mmap(fd, data.nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        raise
    flat = numpy.frombuffer(mapping, dtype=data.dtype)
    segment = SharedSegment(fd, flat.__array_interface__["data"][0], data.nbytes)
    _buffers.PLACED[id(mapping)] = segment
    # The registry forgets the file when its mapping goes (the array and its views
    # with it); calls in flight hold the segment, and its descriptor, until they end.
    weakref.finalize(mapping, _buffers.PLACED.pop, id(mapping), None)
    return flat.reshape(data.shape, order=order)  # type: ignore[no-any-return]
