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

import collections
import functools
import mmap
import os
import pickle
import socket
import sys
import threading
import weakref
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

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
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
    """A pickle whose large buffers are in segments (the sender's side): the message's
    own segment, if any, then the placed ones it uses (see :func:`placed`)."""

    data: bytes
    segments: tuple[Segment, ...]
    spans: tuple[tuple[int, int, int], ...]  # per buffer: (segment index, offset, size)

    def wire(self) -> tuple[bytes, tuple, int]:
        """What the message carries: the stream, where each buffer is, how many
        descriptors follow it."""
        return self.data, self.spans, len(self.segments)

    def fds(self) -> list[int]:
        return [segment.fd for segment in self.segments]


class Mapped(NamedTuple):
    """A received out-of-band pickle: its stream, the spans, the segments mapped."""

    data: bytes
    spans: tuple
    mappings: tuple[mmap.mmap, ...]


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


def dumps(obj: Any, threshold: int, place: bool = True) -> bytes | OutOfBand:
    """Pickle ``obj``: plain bytes if no buffer reaches ``threshold``, else the stream
    and the segments holding those buffers: each copied once into the message's own
    segment, or found already placed (an array that cannot change, :func:`placed`;
    only if ``place``: a worker's results are never placed, they go once)."""
    own: list[memoryview] = []
    where: list[Any] = []  # per buffer: its index in ``own``, or its placed segment

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: into the stream, as pickle does
            return True
        if view.nbytes < threshold:
            return True
        segment = placed(view) if place else None
        if segment is None:
            where.append(len(own))
            own.append(view)
        else:
            where.append(segment)
        return False

    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not where:
        return data
    segments: list[Segment] = [Segment(own)] if own else []
    spans = []
    for found in where:
        if type(found) is int:
            offset, size = segments[0].spans[found]
            spans.append((0, offset, size))
        else:
            if found not in segments:
                segments.append(found)
            spans.append((segments.index(found), 0, found.spans[0][1]))
    return OutOfBand(data, tuple(segments), tuple(spans))


# -- placed once: buffers that cannot change, shared by every call that passes them ----

#: Segments of arrays that cannot change, by the array's id, with a weak reference to
#: it (its death drops the entry); the least recently used go past PLACED_KEPT.
_placed: collections.OrderedDict[int, tuple[weakref.ref, Segment]] = collections.OrderedDict()
# Reentrant: a weak reference's callback (another array dying) may run while it is held.
_placed_lock = threading.RLock()
PLACED_KEPT = 64


def placed(view: memoryview) -> Segment | None:
    """The segment of ``view`` placed once, if the array it belongs to cannot change
    (read-only through its whole base chain, down to memory it owns or to ``bytes``):
    every call passing that array shares one copy, as ``ray.put`` shares one. None for
    anything else (a writable array may change between calls: it is copied per call)."""
    owner = view.obj
    if not _cannot_change(owner):
        return None
    key = id(owner)
    with _placed_lock:
        entry = _placed.get(key)
        if entry is not None and entry[0]() is owner:
            _placed.move_to_end(key)
            return entry[1]
    segment = Segment([view])
    with _placed_lock:
        _placed[key] = (weakref.ref(owner, functools.partial(_forget, key)), segment)
        while len(_placed) > PLACED_KEPT:  # (a call holding one keeps it open meanwhile)
            _placed.popitem(last=False)
    return segment


def _forget(key: int, ref: weakref.ref) -> None:
    with _placed_lock:
        entry = _placed.get(key)
        if entry is not None and entry[0] is ref:
            del _placed[key]


def _cannot_change(owner: Any) -> bool:
    """A numpy array read-only down its base chain (the owner must be an array: bytes
    cannot be weakly referenced, so a bytes argument is copied per call)."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(owner, numpy.ndarray):
        return False
    while isinstance(owner, numpy.ndarray):
        if owner.flags.writeable:
            return False
        owner = owner.base
        if owner is None:
            return True
    return type(owner) is bytes


def dumps_value(value: Any, threshold: int) -> bytes | OutOfBand:
    """A result: as :func:`dumps`, a large ``bytes``/``bytearray`` out of band too, in
    a segment of its own (never placed: it is sent once)."""
    return dumps(_large(value, threshold), threshold, place=False)


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


def receive(wire: tuple, fds: list[int], writable: bool) -> Mapped:
    """Map a received message's segments (and close their descriptors: the mappings
    keep the memory). ``writable``: copy-on-write (the parent's results); else
    read-only (arguments)."""
    data, spans, _count = wire
    if writable:  # (populating a private writable mapping would copy every page)
        flags, prot = mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE
    else:  # read-only: its page tables filled in one call, not one fault per page
        flags, prot = mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ
    mappings = []
    try:
        for fd in fds:
            mappings.append(mmap.mmap(fd, os.fstat(fd).st_size, flags=flags, prot=prot))
    finally:
        for fd in fds:
            os.close(fd)
    return Mapped(data, spans, tuple(mappings))


def loads(mapped: Mapped) -> Any:
    """Unpickle a received pickle over views of its mappings (no copy of the buffers)."""
    wholes = [memoryview(mapping) for mapping in mapped.mappings]
    buffers = [wholes[index][offset : offset + size] for index, offset, size in mapped.spans]
    return pickle.loads(mapped.data, buffers=buffers)


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
