"""Large buffers travel out of band, through shared memory, both ways (``_buffers.py``).

Arguments holding a buffer of at least ``buffer_threshold`` bytes reach the worker as
read-only views of an anonymous shared-memory file; results come back mapped
copy-on-write (writable). Values, types, dtypes and shapes are those a pipe would have
carried; nothing is left open or mapped once the calls are done, and a worker killed
with such a call leaves nothing behind.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paralleltask import (
    CachePolicy,
    MemoryStore,
    ProcessExecutor,
    WorkerCrashedError,
    _buffers,
    entrypoint,
    task,
)

pytestmark = pytest.mark.skipif(not _buffers.SUPPORTED, reason="memfd and SCM_RIGHTS: Linux")

MIB = 1 << 20


# -- tasks (module level: workers import them by reference) ----------------------------


@task
def describe(value):
    """What the worker sees of its argument."""
    if isinstance(value, np.ndarray):
        return {
            "type": "ndarray",
            "dtype": str(value.dtype),
            "shape": value.shape,
            "writeable": bool(value.flags.writeable),
            "digest": hashlib_digest(value.tobytes()),
            "f_order": bool(value.flags.f_contiguous and not value.flags.c_contiguous),
        }
    return {"type": type(value).__name__, "size": len(value), "digest": hashlib_digest(value)}


def hashlib_digest(data) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@task
def make_array(seed: int, size: int, dtype: str = "float64"):
    return np.random.default_rng(seed).random(size // 8).astype(dtype)


@task
def make_bytes(size: int, kind: str):
    data = os.urandom(16) * (size // 16)
    return bytearray(data) if kind == "bytearray" else data


@task
def write_first(array):
    array[0] = 1
    return array[0]


@task
def crash_on(array):
    os._exit(3)


STASHED: list = []  # in each worker: arguments a task kept, with their digest then


@task
def stash(array):
    STASHED.append((array, hashlib_digest(array.tobytes())))
    return float(array.sum())


@task
def stashed_intact() -> tuple[int, bool]:
    """How many arguments this worker kept, and whether each still holds what it held
    when its call ran (a segment reused under a kept view would change it)."""
    return len(STASHED), all(hashlib_digest(a.tobytes()) == d for a, d in STASHED)


@task
def array_sum(array):
    return float(array.sum())


@task
def identity(value):
    return value


@task(cache_policy=CachePolicy(key_func=lambda seed, size: f"{seed}-{size}"))
def cached_array(seed: int, size: int):
    return np.random.default_rng(seed).random(size // 8)


def call(task_function, *args, **kwargs):
    @entrypoint()
    def body(_):
        return task_function(*args, **kwargs).result()

    return body.invoke(0)


def expected(value):
    return describe.func(value)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def memfd_mappings() -> int:
    with open("/proc/self/maps") as maps:
        # (a message's segments: not the shared()'s, nor the workers' progress words)
        return sum("memfd:paralleltask (deleted)" in line for line in maps)


# -- what travels, and how it arrives ---------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "int8", "uint8", "complex128", "bool"])
def test_a_large_array_argument_arrives_equal_and_read_only(dtype):
    array = (np.arange(2 * MIB) % 7).astype(dtype)
    seen = call(describe, array)
    assert seen == {**expected(array), "writeable": False}


def test_a_fortran_ordered_array_keeps_its_order():
    array = np.asfortranarray(np.arange(2 * MIB, dtype=np.float32).reshape(1024, -1))
    seen = call(describe, array)
    assert seen == {**expected(array), "writeable": False}
    assert seen["f_order"] is True


def test_a_non_contiguous_array_travels_in_the_pickle_and_arrives_equal():
    array = np.arange(4 * MIB, dtype=np.float64)[::2]
    assert type(_buffers.dumps(array, MIB)) is bytes  # (no buffer to send out of band)
    seen = call(describe, array)
    assert seen["digest"] == expected(array)["digest"]


def test_buffers_below_the_threshold_stay_in_the_pickle():
    assert type(_buffers.dumps(np.zeros(MIB // 8 - 1), MIB)) is bytes
    assert type(_buffers.dumps(np.zeros(MIB // 8), MIB)) is _buffers.OutOfBand
    small = np.arange(1000)
    assert call(describe, small) == expected(small)  # in the pickle: a writable copy


@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
def test_large_bytes_keep_their_type_both_ways(kind):
    data = os.urandom(3 * MIB)
    value = bytearray(data) if kind == "bytearray" else data
    assert type(_buffers.dumps_call_arguments((value,), {}, None, MIB)) is _buffers.OutOfBand
    assert call(describe, value) == {
        "type": kind,
        "size": len(value),
        "digest": expected(value)["digest"],
    }
    back = call(make_bytes, 2 * MIB, kind)
    assert type(back).__name__ == kind and len(back) == 2 * MIB


def test_keyword_and_nested_arguments_travel_too():
    array = np.arange(MIB, dtype=np.float64)

    @entrypoint()
    def body(_):
        a = identity(value=array)
        b = identity([array, {"inner": array}])
        return a.result(), b.result()

    kwarg, nested = body.invoke(0)
    np.testing.assert_array_equal(kwarg, array)
    np.testing.assert_array_equal(nested[0], array)
    np.testing.assert_array_equal(nested[1]["inner"], array)


def test_a_large_result_comes_back_equal_and_writable():
    result = call(make_array, 7, 8 * MIB)
    assert np.array_equal(result, make_array.func(7, 8 * MIB))
    assert result.flags.writeable
    result[:10] = -1.0  # copy-on-write: the pages written are the parent's own
    assert (result[:10] == -1.0).all()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes")
def test_writing_to_a_read_only_argument_fails_and_says_why():
    with pytest.raises(ValueError, match="read-only") as raised:
        call(write_first, np.zeros(MIB))
    assert any("copy it before writing" in note for note in raised.value.__notes__)
    assert call(write_first, np.zeros(100)) == 1.0  # in the pickle: a copy of its own


# -- nothing left behind ------------------------------------------------------------------


def test_many_large_calls_leave_no_descriptor_or_mapping_open():
    arrays = [np.full(MIB, float(i)) for i in range(6)]

    @entrypoint()
    def body(_):
        sums = [identity(a) for a in arrays]
        made = [make_array(i, 2 * MIB) for i in range(6)]
        return [f.result().sum() for f in sums], [f.result().shape for f in made]

    body.invoke(0)  # (first: whatever the pool opens once is open before we count)
    gc.collect()
    _buffers.trim_spares(0)
    fds, maps, segments = open_fds(), memfd_mappings(), _buffers._open_segments
    for _ in range(5):
        sums, shapes = body.invoke(0)
    assert sums == [a.sum() for a in arrays] and shapes == [(MIB // 4,)] * 6
    gc.collect()
    assert open_fds() <= fds + _buffers.SPARES_KEPT  # spare segments, at most
    _buffers.trim_spares(0)
    assert open_fds() == fds
    assert memfd_mappings() == maps == 0
    assert _buffers._open_segments == segments == 0  # the count the limit reads balances


def test_a_worker_killed_holding_large_arguments_leaves_the_others_served():
    arrays = [np.full(MIB, float(i)) for i in range(4)]
    gc.collect()
    _buffers.trim_spares(0)
    fds = open_fds()

    @entrypoint()
    def body(_):
        doomed = crash_on(arrays[0])
        others = [identity(a) for a in arrays[1:]]
        with pytest.raises(WorkerCrashedError):
            doomed.result()
        return [f.result().sum() for f in others]

    assert body.invoke(0) == [a.sum() for a in arrays[1:]]
    gc.collect()
    _buffers.trim_spares(0)
    assert open_fds() == fds


def test_a_cached_and_checkpointed_large_result_is_kept_whole():
    cache, checkpoints = MemoryStore(), MemoryStore()

    @entrypoint(cache=cache, checkpointer=checkpoints)
    def body(seed):
        return cached_array(seed, 4 * MIB).result()

    config = {"configurable": {"thread_id": "large-result"}}
    first = body.invoke(3, config)
    again = body.invoke(3, {"configurable": {"thread_id": "large-result-2"}})  # a cache hit
    assert np.array_equal(first, cached_array.func(3, 4 * MIB))
    assert np.array_equal(again, first)
    assert np.array_equal(body.get_state(config).values, first)


def test_the_threshold_is_a_size_or_none():
    assert ProcessExecutor(buffer_threshold="4MiB").buffer_threshold == 4 * MIB
    assert ProcessExecutor(buffer_threshold=None).buffer_threshold is None
    assert ProcessExecutor().buffer_threshold == _buffers.DEFAULT_THRESHOLD
    for wrong in (0, -1, "lots", 1.5, True):
        with pytest.raises(ValueError, match="buffer_threshold must be"):
            ProcessExecutor(buffer_threshold=wrong)


def test_a_pool_without_a_threshold_sends_everything_in_the_pickle():
    in_band = ProcessExecutor(max_workers=1, buffer_threshold=None)

    @entrypoint(executor=in_band)
    def body(array):
        return describe(array).result(), make_array(1, 2 * MIB).result()

    try:
        array = np.arange(2 * MIB, dtype=np.uint8)
        seen, made = body.invoke(array)
        assert seen == expected(array)  # a copy of its own: writable
        assert made.flags.writeable and made.shape == (MIB // 4,)
    finally:
        in_band.shutdown()


def test_an_out_of_band_pickle_round_trips_without_a_worker():
    value = {"a": np.arange(MIB, dtype=np.int64), "b": [np.ones((512, 512))], "c": 1}
    packed = _buffers.dumps(value, MIB)
    assert type(packed) is _buffers.OutOfBand and len(packed.data) < 4096
    fds = [os.dup(fd) for fd in packed.fds()]
    for segment in packed.segments:
        segment.close()  # the receiver's descriptors keep the files
    loaded = _buffers.loads(_buffers.receive(packed.wire(), fds, writable=False))
    assert pickle.dumps(loaded["c"]) == pickle.dumps(1)
    np.testing.assert_array_equal(loaded["a"], value["a"])
    np.testing.assert_array_equal(loaded["b"][0], value["b"][0])
    assert not loaded["a"].flags.writeable
    assert loaded["a"].ctypes.data % 64 == 0 and loaded["b"][0].ctypes.data % 64 == 0


# -- property: what the worker sees is what was sent --------------------------------------

DTYPES = ["int8", "uint8", "int32", "float32", "float64", "complex64"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from(DTYPES),
    rows=st.integers(1, 600),
    columns=st.integers(1, 700),
    order=st.sampled_from("CF"),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_array_arrives_as_serial_code_sees_it(dtype, rows, columns, order, seed):
    data = np.random.default_rng(seed).integers(0, 100, (rows, columns)).astype(dtype)
    array = np.asarray(data, order=order)
    seen = call(describe, array)
    serial = expected(array)
    out_of_band = array.nbytes >= _buffers.DEFAULT_THRESHOLD
    assert seen == {**serial, "writeable": not out_of_band}


# -- copy semantics, limits and broken streams --------------------------------------------


@task
def first_value(array):
    return float(array.flat[0])


def test_an_array_changed_between_two_calls_is_seen_changed_by_the_second():
    array = np.zeros(MIB // 8)

    @entrypoint()
    def body(_):
        before = first_value(array).result()
        array[0] = 99.0  # copied at each call: the next call sees this, as through a pipe
        return before, first_value(array).result()

    assert body.invoke(0) == (0.0, 99.0)


def test_an_argument_handed_back_comes_back_equal_and_read_only_as_documented():
    array = np.arange(MIB // 4, dtype=np.float64)
    back = call(identity, array)  # the worker's read-only view: pickle keeps it read-only
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable
    made = call(make_array, 2, 2 * MIB)  # an array the task made: writable
    assert made.flags.writeable


def test_past_the_segment_limit_calls_go_through_the_pipe(monkeypatch):
    monkeypatch.setattr(_buffers, "SEGMENTS_ALLOWED", 0)
    array = np.arange(2 * MIB, dtype=np.uint8)
    assert type(_buffers.dumps(array, MIB)) is bytes
    assert call(describe, array) == expected(array)  # through the pipe: a writable copy


def test_descriptors_that_did_not_come_break_the_stream_loudly():
    import socket

    left, right = socket.socketpair()
    try:
        left.sendall(b"X")  # the announced descriptors' byte, without them
        with pytest.raises(_buffers.BrokenStream, match="0 arrived"):
            _buffers.recv_fds(right, 1)
    finally:
        left.close()
        right.close()


def test_a_result_the_parent_cannot_map_fails_its_call_and_the_pool_serves_on(monkeypatch):
    """No address space left (say) when mapping a result: that call's error, not the
    worker's end (its later messages must still be read)."""
    from paralleltask import SerializationError

    real_receive = _buffers.receive

    def failing(wire, fds, writable):
        if writable:
            for fd in fds:
                os.close(fd)
            raise OSError(12, "Cannot allocate memory")
        return real_receive(wire, fds, writable)

    monkeypatch.setattr(_buffers, "receive", failing)
    with pytest.raises(SerializationError, match="could not be mapped in the parent"):
        call(make_array, 1, 2 * MIB)
    monkeypatch.setattr(_buffers, "receive", real_receive)
    assert call(make_array, 1, 2 * MIB).shape == (MIB // 4,)
    assert call(identity, 5) == 5


def test_a_segment_whose_worker_unmapped_it_takes_the_next_calls_buffers(monkeypatch):
    arrays = [np.full(MIB, float(i)) for i in range(12)]

    @entrypoint()
    def one_by_one(_):
        return [array_sum(a).result() for a in arrays]  # each waits: a spare is free

    _buffers.trim_spares(0)
    created = []
    memfd_create = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *a: created.append(a) or memfd_create(*a))
    assert one_by_one.invoke(0) == [a.sum() for a in arrays]  # each saw its own buffers
    monkeypatch.undo()
    assert 1 <= len(created) <= 2 and len(_buffers._spares) >= 1  # the rest were spares
    _buffers.trim_spares(0)
    assert _buffers._spares == []


def test_a_segment_an_argument_is_still_read_from_is_never_reused():
    arrays = [np.full(MIB, float(i)) for i in range(16)]

    @entrypoint()
    def keep_then_check(_):
        sums = [stash(a).result() for a in arrays]
        overwrite = [array_sum(np.full(MIB, -1.0)).result() for _ in range(16)]
        checks = [stashed_intact().result() for _ in range(8)]
        return sums, overwrite, checks

    sums, overwrite, checks = keep_then_check.invoke(0)
    assert sums == [a.sum() for a in arrays] and overwrite == [-MIB * 1.0] * 16
    assert all(intact for _count, intact in checks) and max(c for c, _ in checks) > 0


def test_spare_segments_are_closed_once_unused_for_a_while(monkeypatch):
    monkeypatch.setattr(_buffers, "SPARE_SECONDS", 0.05)

    @entrypoint()
    def one(_):
        return array_sum(np.ones(MIB)).result()

    assert one.invoke(0) == MIB
    deadline = time.monotonic() + 5
    while _buffers._spares and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _buffers._spares == []  # the dispatcher closed it, no call needed
