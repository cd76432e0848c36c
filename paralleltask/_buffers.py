"""Large buffers out of band: what pickle protocol 5 lets travel beside the pickle.

A call's arguments (and a worker's result) are pickled with a buffer callback: every
buffer of at least the threshold (numpy arrays and what is built on them; ``bytes`` and
``bytearray`` passed as an argument or returned as the result) is copied once into an
anonymous shared-memory file (``memfd_create``) instead of into the pickle stream. The
file's descriptor travels over the worker's Unix socket (``SCM_RIGHTS``) right after the
message that names it, and the other side maps it. Memory without a name cannot leak: it
is freed when the last process holding its descriptor or a mapping of it ends, killed or
not. A worker maps arguments read-only (a task that writes to one gets numpy's
"assignment destination is read-only": copy it first); the parent maps a result
copy-on-write, so it is writable and only the pages written to are copied.
"""

from __future__ import annotations

import mmap
import os
import pickle
import socket
from typing import Any, NamedTuple

import cloudpickle

#: Out-of-band transport needs anonymous shared memory and descriptor passing (Linux).
SUPPORTED = hasattr(os, "memfd_create") and hasattr(socket, "send_fds")

#: Buffers of at least this many bytes travel out of band (joblib's max_nbytes is 1M).
DEFAULT_THRESHOLD = 1 << 20

#: Added to the error of a task that wrote to an argument it was given read-only.
READ_ONLY_NOTE = (
    "paralleltask: an argument holding a buffer of at least buffer_threshold bytes (a "
    "numpy array, say) reaches the worker as a read-only view of shared memory; copy it "
    "before writing to it (a = a.copy()), or pass ProcessExecutor(buffer_threshold=None)"
)

_ALIGN = 64  # each buffer starts on a cache line: numpy's views stay aligned
_FDS_PER_MESSAGE = 250  # below the kernel's SCM_MAX_FD (253)


class Segment:
    """An anonymous shared-memory file holding one message's large buffers, written
    once; its descriptor is closed when the segment is (or when it is collected)."""

    __slots__ = ("fd", "spans")

    def __init__(self, views: list[memoryview]) -> None:
        fd = os.memfd_create("paralleltask", os.MFD_CLOEXEC)
        spans = []
        offset = 0
        try:
            for view in views:
                offset = -(-offset // _ALIGN) * _ALIGN
                _write_all(fd, view, offset)
                spans.append((offset, view.nbytes))
                offset += view.nbytes
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.spans = tuple(spans)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    while view.nbytes:  # pwrite copies without holding the GIL
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class OutOfBand(NamedTuple):
    """A pickle whose large buffers are in a segment (the sender's side)."""

    data: bytes
    segment: Segment

    def wire(self) -> tuple[bytes, tuple]:
        """What the message carries: the stream and where each buffer is in the file."""
        return self.data, self.segment.spans


class Mapped(NamedTuple):
    """A received out-of-band pickle: its stream, the spans, the file mapped."""

    data: bytes
    spans: tuple
    mapping: mmap.mmap


class _LargeBytes:
    """A ``bytes``/``bytearray`` argument or result above the threshold: pickled as a
    buffer out of band (pickle writes those types into the stream otherwise)."""

    __slots__ = ("value",)

    def __init__(self, value: bytes | bytearray) -> None:
        self.value = value

    def __reduce_ex__(self, protocol: Any) -> tuple:
        return type(self.value), (pickle.PickleBuffer(self.value),)


def _large(value: Any, threshold: int) -> Any:
    kind = type(value)
    if (kind is bytes or kind is bytearray) and len(value) >= threshold:
        return _LargeBytes(value)
    return value


def dumps(obj: Any, threshold: int) -> bytes | OutOfBand:
    """Pickle ``obj``: plain bytes if no buffer reaches ``threshold``, else the stream
    and a segment holding those buffers (each copied once, into the segment)."""
    views: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: into the stream, as pickle does
            return True
        if view.nbytes < threshold:
            return True
        views.append(view)
        return False

    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not views:
        return data
    return OutOfBand(data, Segment(views))


def dumps_value(value: Any, threshold: int) -> bytes | OutOfBand:
    """A result: as :func:`dumps`, a large ``bytes``/``bytearray`` out of band too."""
    return dumps(_large(value, threshold), threshold)


def dumps_call_arguments(
    args: tuple, kwargs: dict, scratch: Any, threshold: int
) -> bytes | OutOfBand:
    """A call's ``(args, kwargs[, scratch])``, its large ``bytes`` out of band too."""
    args = tuple([_large(value, threshold) for value in args])
    if kwargs:
        kwargs = {name: _large(value, threshold) for name, value in kwargs.items()}
    return dumps((args, kwargs) if scratch is None else (args, kwargs, scratch), threshold)


def wrote_to_read_only(error: BaseException) -> bool:
    """numpy's error for a write to a read-only array (what a task that writes to an
    out-of-band argument gets), where a note can say why (Python 3.11+)."""
    return (
        isinstance(error, ValueError)
        and "read-only" in str(error)
        and hasattr(error, "add_note")
        and READ_ONLY_NOTE not in getattr(error, "__notes__", ())
    )


def receive(wire: tuple, fd: int, writable: bool) -> Mapped:
    """Map a received segment (and close its descriptor: the mapping keeps the memory).

    ``writable``: copy-on-write (the parent's results); else read-only (arguments).
    """
    data, spans = wire
    try:
        offset, size = spans[-1]
        length = offset + size
        if writable:
            flags, prot = mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE
        else:
            flags, prot = mmap.MAP_SHARED, mmap.PROT_READ
        mapping = mmap.mmap(fd, length, flags=flags, prot=prot)
    finally:
        os.close(fd)
    return Mapped(data, spans, mapping)


def loads(mapped: Mapped) -> Any:
    """Unpickle a received pickle over views of its mapping (no copy of the buffers)."""
    whole = memoryview(mapped.mapping)
    return pickle.loads(mapped.data, buffers=[whole[o : o + n] for o, n in mapped.spans])


def send_fds(sock: socket.socket, fds: list[int]) -> None:
    """Send descriptors after the message that names them (one byte carries each batch)."""
    for start in range(0, len(fds), _FDS_PER_MESSAGE):
        socket.send_fds(sock, [b"F"], fds[start : start + _FDS_PER_MESSAGE])


def recv_fds(sock: socket.socket, count: int) -> list[int]:
    """Receive the ``count`` descriptors that follow the message just read."""
    fds: list[int] = []
    while len(fds) < count:
        data, got, _flags, _address = socket.recv_fds(sock, 1, count - len(fds))
        if not data:
            for fd in got:
                os.close(fd)
            raise EOFError("the other end closed its socket before sending the buffers")
        fds.extend(got)
    return fds


def socket_of(conn: Any) -> socket.socket:
    """A socket object on a duplicate of ``conn``'s descriptor (descriptors travel
    through it; the Connection keeps doing the messages)."""
    return socket.socket(fileno=os.dup(conn.fileno()))
