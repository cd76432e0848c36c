"""``shared(array)``: a read-only copy in shared memory, handed to calls by reference.

A call on the process pool handed a shared array, or a contiguous view of it, sends the
file's descriptor and the view's offset (``_buffers.dumps``, ``placed_span``), not a copy
of its bytes: the worker reads the parent's pages, mapped read-only. Non-contiguous
views are pickled as usual. The file is closed once the array and its views are gone and
no call in flight holds it. Values, dtypes, shapes and orders are what serial code sees.
"""

from __future__ import annotations

import gc
import hashlib
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
    InlineExecutor,
    MemoryStore,
    ProcessExecutor,
    ThreadExecutor,
    WorkerCrashedError,
    _buffers,
    default_cache_key,
    entrypoint,
    shared,
    task,
)
from paralleltask.executors.process import default_executor

pytestmark = pytest.mark.skipif(not _buffers.SUPPORTED, reason="memfd and SCM_RIGHTS: Linux")

MIB = 1 << 20
SHARED_FILE = "memfd:paralleltask-shared"  # the name shared() gives its files


# -- tasks (module level: workers import them by reference) ----------------------------


def backing(array) -> str:
    """The name of the mapping this process reads ``array``'s first byte from ('' for
    anonymous memory, numpy's own allocations)."""
    if array.size == 0:
        return ""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[5].strip() if len(fields) > 5 else ""
    return "?"


def digest_of(array) -> tuple[str, tuple, str]:
    return str(array.dtype), array.shape, hashlib.sha256(array.tobytes()).hexdigest()


@task
def describe(array):
    """What the worker sees of its argument, and where its memory lies."""
    return {
        "digest": digest_of(array),
        "c": bool(array.flags.c_contiguous),
        "f": bool(array.flags.f_contiguous),
        "writeable": bool(array.flags.writeable),
        "backing": backing(array),
    }


@task
def digest(array):
    return digest_of(array), SHARED_FILE in backing(array)


@task
def total(array):
    return float(array.sum())


@task
def slow_total(array):
    time.sleep(0.2)
    return float(array.sum())


@task
def write_first(array):
    array.flat[0] = 1
    return True


@task
def several(first, second, plain, small):
    return [digest_of(a) for a in (first, second, plain, small)]


@task(cache_policy=CachePolicy())
def cached_total(array, marks: str):
    """A cached sum that leaves a file per execution (calls run in other processes)."""
    with open(os.path.join(marks, f"{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    return float(array.sum())


KEPT: list = []  # in a worker: shared arrays a task made there and kept


@task
def make_kept_shared(size: int):
    KEPT.append(shared(np.arange(size, dtype=np.float64)))
    return KEPT[-1]


@task
def kept_shared():
    return KEPT[-1]


def call(task_function, *args, **kwargs):
    @entrypoint()
    def body(_):
        return task_function(*args, **kwargs).result()

    return body.invoke(0)


def seen_by_serial_code(array) -> dict:
    return {
        "digest": digest_of(array),
        "c": bool(array.flags.c_contiguous),
        "f": bool(array.flags.f_contiguous),
    }


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def memfd_mappings(name: str = "memfd:paralleltask") -> int:
    with open("/proc/self/maps") as maps:
        return sum(name in line for line in maps)


def settled_fds() -> int:
    """This process's open descriptors once collected garbage and spare segments
    (kept for reuse by the large-buffer transport) are gone."""
    gc.collect()
    _buffers.trim_spares(0)
    return open_fds()


@pytest.fixture
def memfd_calls(monkeypatch):
    """The ``memfd_create`` calls this process makes from now on."""
    made: list = []
    real = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *a, **k: made.append(a) or real(*a, **k))
    return made


# -- 1. what the worker sees is what serial code sees ----------------------------------


def _values(dtype: str, count: int) -> np.ndarray:
    data = np.random.default_rng(count).integers(-100, 100, count)
    if dtype == "bool":
        return data > 0
    if dtype == "complex128":
        return (data + 1j * data[::-1]).astype(dtype)
    if dtype.startswith("datetime64"):
        return (data + 10**9).astype(dtype)
    return data.astype(dtype)


DTYPES = ["float64", "int8", "uint8", "bool", "complex128", "float16", "datetime64[ns]"]

LAYOUTS = {
    "1-d": lambda v: v,
    "2-d C": lambda v: v.reshape(12, -1),
    "2-d F": lambda v: np.asfortranarray(v.reshape(12, -1)),
    "3-d": lambda v: v.reshape(4, 6, -1),
    "3-d F": lambda v: np.asfortranarray(v.reshape(4, 6, -1)),
}

VIEWS = {
    "whole": lambda a: a,
    "a slice at an odd offset": lambda a: a.reshape(-1, order="A")[7:1031],
    "a one-element slice": lambda a: a.reshape(-1, order="A")[5:6],
    "an empty slice at the end": lambda a: a.reshape(-1, order="A")[a.size :],
    "the transpose": lambda a: a.T,
    "a reshape": lambda a: a.reshape(-1, order="A").reshape(3, 8, -1),
    "leading rows": lambda a: a.reshape(-1, order="A").reshape(24, -1)[3:11],
    "a 0-d element view": lambda a: a.reshape(-1, order="A")[9:10].reshape(()),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_shared_array_arrives_equal_and_read_only(dtype, layout):
    original = LAYOUTS[layout](_values(dtype, 12 * 6 * 4 * 10))
    array = shared(original)
    assert seen_by_serial_code(array) == seen_by_serial_code(original)
    assert not array.flags.writeable
    seen = call(describe, array)
    assert {k: seen[k] for k in ("digest", "c", "f")} == seen_by_serial_code(original)
    if dtype.startswith("datetime64"):  # numpy pickles these without a buffer: in band
        return
    assert seen["writeable"] is False
    assert SHARED_FILE in seen["backing"]  # the parent's file, not a copy of it


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("dtype", ["float64", "int8", "complex128", "float16"])
def test_a_contiguous_view_of_a_shared_array_is_read_where_it_lies(dtype, view):
    array = shared(np.asfortranarray(_values(dtype, 24 * 8 * 9).reshape(24, -1)))
    part = VIEWS[view](array)
    assert part.flags.c_contiguous or part.flags.f_contiguous
    assert _buffers.placed_span(part) is not None
    seen = call(describe, part)
    assert {k: seen[k] for k in ("digest", "c", "f")} == seen_by_serial_code(part)
    assert seen["writeable"] is False
    if part.size:
        assert SHARED_FILE in seen["backing"]


def test_an_unaligned_view_of_a_shared_array_arrives_equal():
    """float64 seen from byte 3 of a shared uint8 array: contiguous, not aligned."""
    raw = shared(np.arange(8 * 300 + 16, dtype=np.uint8))
    floats = raw[3 : 3 + 8 * 300].view(np.float64)
    assert not floats.flags.aligned and _buffers.placed_span(floats) is not None
    seen = call(describe, floats)
    assert seen["digest"] == digest_of(floats)
    assert SHARED_FILE in seen["backing"]


def test_one_call_with_two_shared_arrays_and_large_and_small_plain_ones():
    first = shared(np.arange(5000, dtype=np.int32))
    second = shared(np.linspace(0, 1, 3000).reshape(30, 100))
    plain = np.random.default_rng(1).random(MIB // 4)  # 2 MiB: copied out of band
    small = np.arange(10)
    packed = _buffers.dumps(((first[10:], second.T, plain, small), {}), MIB)
    assert type(packed) is _buffers.OutOfBand and len(packed.segments) == 3
    seen = call(several, first[10:], second.T, plain, small)
    assert seen == [digest_of(a) for a in (first[10:], second.T, plain, small)]


HYPOTHESIS_DTYPES = ["int8", "uint8", "int16", "int64", "float16", "float32", "float64"]
HYPOTHESIS_DTYPES += ["complex64", "complex128", "bool", ">i4", "<u2"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from(HYPOTHESIS_DTYPES),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    order=st.sampled_from("CF"),
    bounds=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    transpose=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_view_of_a_shared_array_arrives_as_serial_code_sees_it(
    dtype, shape, order, bounds, transpose, seed
):
    data = np.random.default_rng(seed).integers(0, 120, shape).astype(dtype)
    array = shared(np.asarray(data, order=order))
    start, stop = sorted(bounds)
    view = array[start:stop]
    if transpose:
        view = view.T
    seen, in_shared_memory = call(digest, view)
    serial = data[start:stop].T if transpose else data[start:stop]
    contiguous = view.flags.c_contiguous or view.flags.f_contiguous
    assert in_shared_memory == (contiguous and view.size > 0)
    if contiguous:  # read where it lies: the very bytes, dtype and shape
        assert seen == digest_of(view) == digest_of(serial)
    else:  # pickled in band: what a pipe carries (numpy's pickle makes >i4 native there)
        assert seen == digest_of(pickle.loads(pickle.dumps(view, protocol=5)))
        assert seen[1] == view.shape
        assert np.dtype(seen[0]) == view.dtype.newbyteorder("=")


# -- 2. no copy per call --------------------------------------------------------------


def test_calls_handed_a_shared_array_make_no_copy_of_it(memfd_calls):
    values = np.random.default_rng(2).random(MIB // 4)  # 2 MiB: above the threshold
    array = shared(values)
    assert len(memfd_calls) == 1  # shared() made its file
    _buffers.trim_spares(0)  # (no spare segment to take the control's buffers)
    del memfd_calls[:]

    @entrypoint()
    def body(_):
        whole = [total(array) for _ in range(5)]
        parts = [total(array[1000 + i : 200_000 + i]) for i in range(5)]
        return [f.result() for f in whole], [f.result() for f in parts]

    whole, parts = body.invoke(0)
    assert whole == [float(values.sum())] * 5
    assert parts == [float(values[1000 + i : 200_000 + i].sum()) for i in range(5)]
    assert memfd_calls == []  # 10 calls, not one file: each sent the shared one
    plain = values.copy()
    assert call(total, plain) == float(values.sum())
    assert len(memfd_calls) >= 1  # the control: a plain array of that size is copied


# -- 3. a copy of its own, read-only everywhere ---------------------------------------


def test_changing_the_original_after_shared_changes_nothing_calls_see():
    original = np.arange(1000, dtype=np.float64)
    array = shared(original)
    assert not np.shares_memory(array, original) and original.flags.writeable
    before = digest_of(array)
    original[:] = -1.0
    assert digest_of(array) == before
    assert call(total, array) == float(np.arange(1000).sum())
    assert call(describe, array[10:20])["digest"] == digest_of(np.arange(10, 20, dtype=float))


def test_writing_to_a_shared_array_raises_in_the_parent():
    array = shared(np.zeros((10, 10)))
    for target in (array, array[2:4], array.T, array.reshape(-1)):
        with pytest.raises(ValueError, match="read-only"):
            target[0] = 1.0
    with pytest.raises(ValueError):
        array.flags.writeable = True
    assert not array.any()


@pytest.mark.parametrize("size", [100, MIB])  # below and above the threshold
def test_a_task_that_writes_to_a_shared_array_fails_with_numpys_error(size):
    array = shared(np.zeros(size, dtype=np.uint8))
    with pytest.raises(ValueError, match="read-only") as raised:
        call(write_first, array[1:])
    if sys.version_info >= (3, 11):
        assert _buffers.READ_ONLY_NOTE in getattr(raised.value, "__notes__", ())
    assert not array.any()


# -- 4. non-contiguous views --------------------------------------------------------------


NON_CONTIGUOUS = {
    "every other element": lambda a: a.reshape(-1)[::2],
    "every third from one": lambda a: a.reshape(-1)[1::3],
    "reversed": lambda a: a.reshape(-1)[::-1],
    "a column block": lambda a: a[:, 1:3],
    "a strided transpose": lambda a: a.T[::3],
}


@pytest.mark.parametrize("view", list(NON_CONTIGUOUS))
def test_a_non_contiguous_view_of_a_shared_array_is_pickled_and_arrives_equal(view):
    array = shared(np.arange(40 * 30, dtype=np.int64).reshape(40, 30))
    part = NON_CONTIGUOUS[view](array)
    assert not (part.flags.c_contiguous or part.flags.f_contiguous)
    assert type(_buffers.dumps(part, _buffers.DEFAULT_THRESHOLD)) is bytes  # in band
    seen = call(describe, part)
    assert seen["digest"] == digest_of(part)
    assert SHARED_FILE not in seen["backing"]


# -- 5. idempotence and errors ---------------------------------------------------------


def test_shared_of_a_shared_array_or_of_a_contiguous_view_of_one_is_itself(memfd_calls):
    array = shared(np.arange(600.0).reshape(20, 30))
    assert len(memfd_calls) == 1
    for same in (array, array[3:7], array.T, array.reshape(-1), array[5]):
        assert shared(same) is same
        assert shared(shared(same)) is same
    assert len(memfd_calls) == 1


def test_shared_of_a_strided_view_of_a_shared_array_is_sent_by_reference():
    """shared() promises a call sends a reference to what it returns; a strided view of
    a shared array is returned as it is, and every call pickles it in band."""
    array = shared(np.arange(4000.0))
    strided = shared(array[::2])
    np.testing.assert_array_equal(strided, np.arange(0, 4000, 2, dtype=float))
    assert not strided.flags.writeable
    assert type(_buffers.dumps(strided, _buffers.DEFAULT_THRESHOLD)) is _buffers.OutOfBand


def test_shared_of_a_writable_array_is_a_new_copy_each_time():
    original = np.arange(50)
    first, second = shared(original), shared(original)
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("value", "named"),
    [([1, 2, 3], "list"), ((1.0,), "tuple"), (3.5, "float"), (None, "NoneType")],
)
def test_shared_refuses_what_is_not_a_numpy_array_naming_its_type(value, named):
    with pytest.raises(TypeError, match=rf"not {named}\b"):
        shared(value)


def test_shared_refuses_bytes_and_says_how_to_make_an_array_of_them():
    with pytest.raises(TypeError, match="bytes") as raised:
        shared(b"\x00" * 100)
    assert "numpy.frombuffer" in str(raised.value)
    with pytest.raises(TypeError, match="bytearray"):
        shared(bytearray(100))


@pytest.mark.parametrize(
    "value",
    [
        np.array([object()], dtype=object),
        np.array([1, "a", None], dtype=object),
        np.zeros(3, dtype=[("a", "i4"), ("b", object)]),
    ],
)
def test_shared_refuses_arrays_holding_python_objects(value, memfd_calls):
    with pytest.raises(TypeError, match="Python objects"):
        shared(value)
    assert memfd_calls == []


@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0, 2)])
def test_a_zero_size_array_is_a_read_only_copy_and_travels(shape, memfd_calls):
    original = np.zeros(shape, dtype=np.float32)
    array = shared(original)
    assert memfd_calls == []  # nothing to place
    assert array is not original and array.shape == shape and array.dtype == np.float32
    assert not array.flags.writeable
    again = shared(array)
    assert not again.flags.writeable and again.shape == shape
    assert call(describe, array)["digest"] == digest_of(original)


def test_a_masked_array_keeps_its_mask_or_is_refused():
    """np.ma arrays pass the ndarray check; their copy must not lose the mask."""
    masked = np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 1, 0])
    try:
        array = shared(masked)
    except TypeError:
        return
    assert float(array.sum()) == float(masked.sum()) == 10.0
    np.testing.assert_array_equal(np.ma.getmaskarray(array), np.ma.getmaskarray(masked))


# -- 6. lifetime -------------------------------------------------------------------------


def test_a_dropped_shared_array_leaves_no_file_open_and_no_entry():
    call(total, shared(np.ones(10)))  # (first: whatever the pool opens once is open)
    fds, placed = settled_fds(), dict(_buffers.PLACED)
    assert memfd_mappings(SHARED_FILE) == 0

    def use() -> list[float]:
        array = shared(np.arange(3 * MIB // 8, dtype=np.float64))
        assert len(_buffers.PLACED) == len(placed) + 1
        assert memfd_mappings(SHARED_FILE) == 1 and fds < open_fds() <= fds + 2  # (mmap dups)

        @entrypoint()
        def body(_):
            futures = [total(array), total(array[5:]), total(array.reshape(3, -1)[1])]
            return [f.result() for f in futures]

        return body.invoke(0)

    sums = use()
    n = 3 * MIB // 8
    assert sums == [
        n * (n - 1) / 2,
        n * (n - 1) / 2 - 10,
        float(np.arange(n // 3, 2 * n // 3).sum()),
    ]
    assert settled_fds() == fds
    assert placed == _buffers.PLACED
    assert memfd_mappings(SHARED_FILE) == 0


def test_a_view_outliving_its_array_keeps_the_file_until_it_goes():
    fds = settled_fds()
    array = shared(np.arange(10_000, dtype=np.int64))
    view = array[100:200]
    del array
    gc.collect()
    assert _buffers.placed_span(view) is not None  # the mapping lives in the view
    assert call(total, view) == float(np.arange(100, 200).sum())
    del view
    assert settled_fds() == fds and memfd_mappings(SHARED_FILE) == 0


def test_dropping_a_shared_array_while_calls_are_in_flight_or_queued_breaks_none():
    fds, placed = settled_fds(), dict(_buffers.PLACED)
    calls = default_executor().max_workers + 2  # some wait for a worker: not sent yet

    @entrypoint()
    def body(_):
        def submit():
            array = shared(np.arange(100_000, dtype=np.float64))
            return [slow_total(array[i * 1000 : (i + 1) * 1000]) for i in range(calls)]

        futures = submit()  # no reference to the array or its views is left here
        gc.collect()
        gone = placed == _buffers.PLACED  # forgotten, though calls still hold the file
        return gone, [f.result() for f in futures]

    gone, sums = body.invoke(0)
    assert gone
    assert sums == [float(np.arange(i * 1000, (i + 1) * 1000).sum()) for i in range(calls)]
    assert settled_fds() == fds and memfd_mappings(SHARED_FILE) == 0


def test_a_shared_array_made_in_a_worker_can_be_returned_more_than_once():
    """A task that keeps a shared array it made (a worker-side cache, say) and returns
    it from two calls: the second call's worker must not die."""
    one = ProcessExecutor(max_workers=1)

    @entrypoint(executor=one)
    def body(_):
        first = make_kept_shared(1000).result()
        again = kept_shared().result()
        return float(first.sum()), float(again.sum())

    try:
        assert body.invoke(0) == (499500.0, 499500.0)
    except WorkerCrashedError as exc:
        pytest.fail(f"the worker died returning a shared array a second time: {exc}")
    finally:
        one.shutdown()


# -- 7. other executors --------------------------------------------------------------------


def test_a_pool_without_a_threshold_pickles_shared_arrays_and_gets_them_right(memfd_calls):
    in_band = ProcessExecutor(max_workers=1, buffer_threshold=None)
    array = shared(np.asfortranarray(np.arange(3 * MIB // 8, dtype=np.float64).reshape(3, -1)))
    del memfd_calls[:]

    @entrypoint(executor=in_band)
    def body(_):
        return describe(array).result(), describe(array[1:]).result(), total(array.T).result()

    try:
        whole, part, summed = body.invoke(0)
    finally:
        in_band.shutdown()
    assert {k: whole[k] for k in ("digest", "c", "f")} == seen_by_serial_code(array)
    assert part["digest"] == digest_of(array[1:])
    assert summed == float(array.sum())
    assert SHARED_FILE not in whole["backing"] and SHARED_FILE not in part["backing"]
    assert memfd_calls == []  # nothing out of band


@pytest.mark.parametrize("executor", [ThreadExecutor, InlineExecutor])
def test_shared_arrays_on_threads_and_inline_are_right(executor):
    pool = executor()
    array = shared(np.arange(2000, dtype=np.int16).reshape(40, 50))

    @entrypoint(executor=pool)
    def body(_):
        views = (array, array[3:9], array.T, array[:, ::7])
        return [describe(v).result()["digest"] for v in views]

    try:
        seen = body.invoke(0)
    finally:
        pool.shutdown()
    assert seen == [digest_of(v) for v in (array, array[3:9], array.T, array[:, ::7])]


# -- 8. cache keys ---------------------------------------------------------------------------


KEYED = {
    "small C": lambda: np.arange(30, dtype=np.float64).reshape(5, 6),
    "large C (hashed in place)": lambda: np.random.default_rng(6).random((256, 64)),
    "F-ordered": lambda: np.asfortranarray(np.random.default_rng(7).random((256, 64))),
    "int8 1-d": lambda: np.arange(100_000, dtype=np.int8),
}

KEYWORD_WAYS = {
    "keyword": lambda v: default_cache_key(values=v),
    "nested in a keyword": lambda v: default_cache_key(v=[{"w": v}]),
}

POSITIONAL_WAYS = {
    "positional": lambda v: default_cache_key(v),
    "positional, with others": lambda v: default_cache_key(1, v, k="x"),
    "nested in a positional list": lambda v: default_cache_key([v, 2]),
}


def _keys(ways: dict, value) -> dict:
    return {way: key(value) for way, key in ways.items()}


@pytest.mark.parametrize("name", list(KEYED))
def test_a_shared_array_keyword_argument_has_the_cache_key_of_the_plain_array(name):
    plain = KEYED[name]()
    assert _keys(KEYWORD_WAYS, shared(plain)) == _keys(KEYWORD_WAYS, plain)
    assert _keys(KEYWORD_WAYS, shared(plain)[2:]) == _keys(KEYWORD_WAYS, plain[2:])
    other = _keys(KEYWORD_WAYS, shared(plain + 1))
    assert all(other[way] != key for way, key in _keys(KEYWORD_WAYS, plain).items())


@pytest.mark.parametrize("name", list(KEYED))
def test_a_shared_array_positional_argument_has_the_cache_key_of_the_plain_array(name):
    plain = KEYED[name]()
    assert _keys(POSITIONAL_WAYS, shared(plain)) == _keys(POSITIONAL_WAYS, plain)
    assert _keys(POSITIONAL_WAYS, shared(plain)[2:]) == _keys(POSITIONAL_WAYS, plain[2:])
    other = _keys(POSITIONAL_WAYS, shared(plain + 1))
    assert all(other[way] != key for way, key in _keys(POSITIONAL_WAYS, plain).items())


@pytest.fixture
def key_pickler_released():
    """After the test: one more key in this thread, whose pickler (reused from key to key)
    would otherwise keep the last key's arguments alive (see the test below), and with
    them a shared array's file, seen by the descriptor counts of other test modules."""
    yield
    default_cache_key(0)
    gc.collect()


def test_switching_a_cached_call_to_a_shared_array_hits_its_entry(tmp_path, key_pickler_released):
    values = np.arange(50_000, dtype=np.float64)

    @entrypoint(cache=MemoryStore())
    def body(array):
        return cached_total(array, str(tmp_path)).result()

    assert body.invoke(values) == body.invoke(shared(values)) == float(values.sum())
    assert len(os.listdir(tmp_path)) == 1  # the second call was served from the cache


@pytest.mark.parametrize("as_keyword", [False, True])
def test_a_shared_array_handed_to_a_cached_call_is_freed_once_dropped(
    tmp_path, as_keyword, key_pickler_released
):
    fds, placed = settled_fds(), dict(_buffers.PLACED)

    def use() -> float:
        array = shared(np.arange(50_000, dtype=np.float64))

        @entrypoint(cache=MemoryStore())
        def body(_):
            if as_keyword:
                return cached_total(array=array, marks=str(tmp_path)).result()
            return cached_total(array, str(tmp_path)).result()

        return body.invoke(0)

    assert use() == float(np.arange(50_000).sum())
    gc.collect()
    assert placed == _buffers.PLACED  # nothing holds the array: its file is forgotten
    assert settled_fds() == fds and memfd_mappings(SHARED_FILE) == 0
