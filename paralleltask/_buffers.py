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

import errno
import mmap
import os
import pickle
import resource
import socket
import struct
import sys
import threading
import time
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


def _segments_allowed() -> int:
    """How many segments this process keeps open at once: a quarter of its descriptor
    limit, so that queued calls never take the descriptors the pool and the results
    coming back need (past it, a message goes through the pipe)."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, soft // 4)


SEGMENTS_ALLOWED = _segments_allowed()
_open_segments = 0  # segments open in this process, under _count_lock
# Segments are made by callers' threads and closed by whichever thread drops the last
# reference: ``+=`` on a global is not atomic across threads, so the count is locked.
_count_lock = threading.Lock()

#: Errors that mean "no segment can be made now": the message goes through the pipe.
_NO_SEGMENT = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOSPC}

_ALIGN = 64  # each buffer starts on a cache line: numpy's views stay aligned
_FDS_PER_MESSAGE = 250  # below the kernel's SCM_MAX_FD (253)


class Segment:
    """An anonymous shared-memory file holding one message's large buffers, written
    once; its descriptor is closed when the segment is (or when it is collected).

    A segment every worker it was sent to has unmapped (``sent`` then ``released``, as
    their DONEs say) is not closed but kept as a spare: the next call's buffers are
    written into it, which skips the kernel's allocating and zeroing fresh pages (an
    8 MB buffer: 0.7 ms into a spare, 2.2 ms into a new file here)."""

    __slots__ = ("capacity", "fd", "sent", "spans", "unreleased")

    def __init__(self, views: list[memoryview]) -> None:
        global _open_segments
        self.fd = -1  # (so that a failed creation closes nothing when collected)
        self.spans: tuple = ()
        self.unreleased = 0  # workers it was sent to that have not said they unmapped it
        self.sent = False
        if _open_segments >= SEGMENTS_ALLOWED:  # (read unlocked: a limit, not a ledger)
            raise OSError(errno.EMFILE, f"{_open_segments} shared-memory segments open")
        spans = []
        end = 0
        for view in views:
            start = -(-end // _ALIGN) * _ALIGN
            spans.append((start, view.nbytes))
            end = start + view.nbytes
        fd, self.capacity = _spare(end)
        try:
            for view, (start, _size) in zip(views, spans, strict=True):
                write_all(fd, view, start)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.spans = tuple(spans)
        with _count_lock:
            _open_segments += 1

    def sending(self) -> None:
        """It goes to a worker (the pool lock held: so is :meth:`released`'s)."""
        self.sent = True
        self.unreleased += 1

    def released(self) -> None:
        """A worker it was sent to has unmapped it (its DONE said so)."""
        self.unreleased -= 1

    def close(self) -> None:
        global _open_segments
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        with _count_lock:
            _open_segments -= 1
            # Nobody maps it (every worker given it said so; a crashed one may not have,
            # and then it is closed): its pages can take the next call's buffers.
            if self.sent and self.unreleased == 0 and _keep_spare_locked(fd, self.capacity):
                return
        os.close(fd)

    def __del__(self) -> None:
        self.close()


# Spare segments: (capacity, fd, when kept), newest last, under _count_lock. Few and
# small enough to be worth keeping, closed once unused for SPARE_SECONDS (the pool's
# dispatcher calls trim_spares) or when the executor shuts down.
_spares: list[tuple[int, int, float]] = []
SPARES_KEPT = 8
SPARE_BYTES = 256 << 20
SPARE_SECONDS = 1.0


def _spare(size: int) -> tuple[int, int]:
    """A descriptor for ``size`` bytes and its capacity: a spare at least that large
    (and at most twice: a larger one would be mapped whole for a small message), or a
    new file."""
    with _count_lock:
        best = None
        for index, (capacity, _fd, _when) in enumerate(_spares):
            if size <= capacity <= 2 * size and (best is None or capacity < _spares[best][0]):
                best = index
        if best is not None:
            capacity, fd, _when = _spares.pop(best)
            return fd, capacity
    return os.memfd_create("paralleltask", os.MFD_CLOEXEC), size


def _keep_spare_locked(fd: int, capacity: int) -> bool:
    if capacity > SPARE_BYTES or capacity == 0:
        return False
    _spares.append((capacity, fd, time.monotonic()))
    while len(_spares) > SPARES_KEPT or sum(s[0] for s in _spares) > SPARE_BYTES:
        os.close(_spares.pop(0)[1])
    return True


def trim_spares(older_than: float | None = None) -> float | None:
    """Close the spares unused for ``older_than`` seconds (default SPARE_SECONDS; all
    of them with 0); return how long until the next one is due, None if none is left."""
    if older_than is None:
        older_than = SPARE_SECONDS
    now = time.monotonic()
    with _count_lock:
        kept = []
        for spare in _spares:
            if now - spare[2] >= older_than:
                os.close(spare[1])
            else:
                kept.append(spare)
        _spares[:] = kept
        return min(s[2] for s in kept) + older_than - now if kept else None


def write_all(fd: int, view: memoryview, offset: int) -> None:
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    while view.nbytes:  # pwrite copies without holding the GIL
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class OutOfBand(NamedTuple):
    """A pickle whose large buffers are in segments (the sender's side; one today, the
    wire format takes several)."""

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


_RAW = (bytes, bytearray)


def _large(value: Any, threshold: int) -> Any:
    kind = type(value)
    if (kind is bytes or kind is bytearray) and len(value) >= threshold:
        return _LargeBytes(value)
    return value


#: Arrays placed by ``shared()`` (``_shared.py``): id of the mapping -> its segment.
PLACED: dict[int, Any] = {}


def placed_span(obj: Any) -> tuple[Any, int] | None:
    """``(segment, offset)`` if ``obj`` (a numpy array, or what a buffer's view is of)
    lies in an array placed by ``shared()``; None otherwise."""
    ndarray = sys.modules["numpy"].ndarray  # (something is placed: numpy is imported)
    if not isinstance(obj, ndarray):
        return None
    base = obj
    while isinstance(base, ndarray):  # a view's base is the array it views, down to
        base = base.base  # the root, whose base is a memoryview of the mapping
    if isinstance(base, memoryview):
        base = base.obj
    segment = PLACED.get(id(base))
    if segment is None:
        return None
    offset = obj.__array_interface__["data"][0] - segment.address
    if not 0 <= offset <= segment.size - obj.nbytes:
        return None
    return segment, offset


def dumps(obj: Any, threshold: int) -> bytes | OutOfBand:
    """Pickle ``obj``: plain bytes if no buffer reaches ``threshold``, else the stream
    and one segment holding those buffers, each copied into it once (at the call: what
    the worker sees is the value as it was then, as through a pipe). A buffer of an
    array placed by ``shared()`` is not copied, whatever its size: its own segment goes
    instead (nothing can write to it). If no segment can be made (no descriptor left:
    ``ulimit -n``), everything goes into the stream: slower, never wrong. A read-only
    buffer stays read-only on the other side (pickle says so in the stream): a task
    that returns its argument hands back a read-only array."""
    views: list[memoryview] = []
    order: list[Any] = []  # per out-of-band buffer: a copied view's index, or (placed)

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()
        except BufferError:  # not contiguous: into the stream, as pickle does
            return True
        if PLACED:
            placed = placed_span(view.obj)
            if placed is not None:
                order.append((placed[0], placed[1], view.nbytes))
                return False
        if view.nbytes < threshold:
            return True
        order.append(len(views))
        views.append(view)
        return False

    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not order:
        return data
    segments: list[Any] = []
    if views:
        try:
            segments.append(Segment(views))
        except OSError as exc:
            if exc.errno not in _NO_SEGMENT:
                raise
            return cloudpickle.dumps(obj, protocol=5)
    spans = []
    for entry in order:
        if type(entry) is int:
            offset, size = segments[0].spans[entry]
            spans.append((0, offset, size))
        else:
            segment, offset, size = entry
            if segment not in segments:
                segments.append(segment)
            spans.append((segments.index(segment), offset, size))
    return OutOfBand(data, tuple(segments), tuple(spans))


def dumps_value(value: Any, threshold: int) -> bytes | OutOfBand:
    """A result: as :func:`dumps`, a large ``bytes``/``bytearray`` out of band too."""
    return dumps(_large(value, threshold), threshold)


def dumps_call_arguments(
    args: tuple, kwargs: dict, scratch: Any, threshold: int
) -> bytes | OutOfBand:
    """A call's ``(args, kwargs[, scratch])``, its large ``bytes`` out of band too."""
    for value in args:  # (rebuilt only when one is large bytes: the small call's path)
        if type(value) in _RAW and len(value) >= threshold:
            args = tuple([_large(value, threshold) for value in args])
            break
    for value in kwargs.values():
        if type(value) in _RAW and len(value) >= threshold:
            kwargs = {name: _large(value, threshold) for name, value in kwargs.items()}
            break
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


def unmap(mapped: Mapped) -> bool:
    """Unmap a received message's segments; False if an object still reads one (a task
    kept a view of its argument, or returned one): that mapping stays, the memory with
    it, until the object goes."""
    unmapped = True
    for mapping in mapped.mappings:
        try:
            mapping.close()
        except BufferError:  # "cannot close exported pointers exist"
            unmapped = False
    return unmapped


#: The progress word: the id of the sync call a worker last started (little-endian u64).
PROGRESS = struct.Struct("<Q")


def progress_word() -> tuple[int, mmap.mmap]:
    """A worker's progress word: an 8-byte anonymous shared file, mapped, and its fd
    (sent to the parent with READY; the parent maps it read-only)."""
    fd = os.memfd_create("paralleltask-progress", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, PROGRESS.size)
        return fd, mmap.mmap(fd, PROGRESS.size)
    except BaseException:
        os.close(fd)
        raise


def read_progress(fd: int) -> mmap.mmap:
    """The parent's read-only view of a worker's progress word (the fd is closed)."""
    try:
        return mmap.mmap(fd, PROGRESS.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def send_fds(sock: socket.socket, fds: list[int]) -> None:
    """Send descriptors after the message that names them (one byte carries each batch)."""
    for start in range(0, len(fds), _FDS_PER_MESSAGE):
        socket.send_fds(sock, [b"F"], fds[start : start + _FDS_PER_MESSAGE])


class BrokenStream(OSError):
    """The descriptors announced by a message did not come as sent (the receiver had no
    descriptor left, so the kernel dropped them): the stream cannot be trusted after."""


def recv_fds(sock: socket.socket, count: int) -> list[int]:
    """Receive the ``count`` descriptors that follow the message just read; raise
    :class:`BrokenStream` (their byte read, nothing else) if they were not all given."""
    fds: list[int] = []
    try:
        while len(fds) < count:
            data, got, flags, _address = socket.recv_fds(sock, 1, count - len(fds))
            fds.extend(got)
            if not data:
                raise EOFError("the other end closed its socket before sending the buffers")
            if data != b"F" or flags & socket.MSG_CTRUNC or not got:
                raise BrokenStream(
                    f"{count} descriptors were announced, {len(fds)} arrived "
                    "(no descriptor left here? raise `ulimit -n`)"
                )
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def socket_of(conn: Any) -> socket.socket:
    """A socket object on a duplicate of ``conn``'s descriptor (descriptors travel
    through it; the Connection keeps doing the messages)."""
    return socket.socket(fileno=os.dup(conn.fileno()))
