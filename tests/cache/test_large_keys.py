"""The default cache key hashes large arguments in place, and keys what it keyed before.

The key is the sha256 of the frozen arguments' pickle (protocol 5), streamed into the
hash, with each payload of ``IN_PLACE_MIN`` bytes or more (written out of frame) fed in
as its xxh3-128 digest: an 8 MB array or bytes argument is never copied to be keyed.
The store key of a value without such a payload is the one it had when that pickle was
built whole and hashed (entries stay hits); a value with one changed key once, when xxh3
came in, and keys as the pickle it had before, its large payloads digested.
"""

from __future__ import annotations

import array
import copyreg
import hashlib
import io
import os
import pickle
import pickletools
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from paralleltask import (
    CachePolicy,
    InlineExecutor,
    MemoryStore,
    _keyhash,
    default_cache_key,
    entrypoint,
    task,
)
from paralleltask._cache import entry_key
from paralleltask._keyhash import IN_PLACE_MIN, pickle_digest
from tests.support import ROOT

np = pytest.importorskip("numpy")

PREFIX = b"p" * 16
LARGE = 8 * 1024 * 1024  # bytes: the size the issue measured (W4's arrays)


# -- the key as it was built before issue 15, to prove store keys did not move -------------

_PLAIN_BEFORE = frozenset({int, str, bytes, float, bool, type(None), tuple})


def _freeze_before(obj: Any, depth: int = 10) -> Any:
    kind = type(obj)
    if kind in _PLAIN_BEFORE:
        return obj
    if kind is dict and not obj:
        return ()
    if isinstance(obj, Hashable) or depth <= 0:
        return obj
    if isinstance(obj, Mapping):
        return tuple(sorted((k, _freeze_before(v, depth - 1)) for k, v in obj.items()))
    if isinstance(obj, Sequence):
        return tuple(_freeze_before(x, depth - 1) for x in obj)
    if hasattr(obj, "tobytes"):
        kind_name = f"{kind.__module__}.{kind.__qualname__}"
        dtype = getattr(obj, "dtype", None)
        dtype_name = None if dtype is None else str(dtype)
        if getattr(dtype, "hasobject", False):
            return (kind_name, dtype_name, _freeze_before(obj.tolist(), depth - 1), obj.shape)
        return (kind_name, dtype_name, obj.tobytes(), getattr(obj, "shape", None))
    return obj


def _reduce_plain_ndarray(obj):
    """A plain ndarray as the key has it (not as numpy pickles it: that writes a
    read-only array's data as bytes, a writable one's as a bytearray)."""
    dtype = obj.dtype
    if dtype.hasobject:
        return _keyhash._ndarray, (dtype.str, obj.shape, obj.tolist())
    return _keyhash._ndarray, (dtype.descr if dtype.fields else dtype.str, obj.shape, obj.tobytes())


class _ReferencePickler(pickle.Pickler):
    dispatch_table = {**copyreg.dispatch_table, np.ndarray: _reduce_plain_ndarray}


def _dumps(obj: Any) -> bytes:
    """``pickle.dumps(obj, protocol=5)`` as the key pickles it (see _stream_before)."""
    out = io.BytesIO()
    _ReferencePickler(out, protocol=5).dump(obj)
    return out.getvalue()


def _stream_before(args: tuple, kwargs: dict) -> bytes:
    """The pickle the key is the hash of (positional plain ndarrays keyed by type,
    dtype, shape and data since shared(): their store keys moved once then)."""
    out = io.BytesIO()
    _ReferencePickler(out, protocol=5).dump((_freeze_before(args), _freeze_before(kwargs)))
    return out.getvalue()


def _entry_key_before(args: tuple, kwargs: dict) -> bytes:
    return PREFIX + _reference_digest(_stream_before(args, kwargs))[:16]


# -- the digest found from a pickle's opcodes, not from the writes a pickler makes ---------

#: The opcodes whose argument is a payload after its length (the length's width in bytes).
_PAYLOAD_OPCODES = {
    "BINBYTES": 4,
    "BINUNICODE": 4,
    "BINBYTES8": 8,
    "BINUNICODE8": 8,
    "BYTEARRAY8": 8,
}


def _large_payloads(stream: bytes) -> list[tuple[int, int]]:
    """Where the payloads of ``IN_PLACE_MIN`` bytes or more lie in ``stream``."""
    found = []
    for opcode, _, pos in pickletools.genops(stream):
        width = _PAYLOAD_OPCODES.get(opcode.name)
        if width is not None:
            start = pos + 1 + width
            size = int.from_bytes(stream[pos + 1 : start], "little")
            if size >= IN_PLACE_MIN:
                found.append((start, start + size))
    return found


def _reference_digest(stream: bytes) -> bytes:
    """What the key's hash is of the object ``stream`` (``pickle.dumps``) was made from:
    the sha256 of ``stream`` with each payload of ``IN_PLACE_MIN`` bytes or more replaced
    by its xxh3-128 digest."""
    digest, done = hashlib.sha256(), 0
    for start, end in _large_payloads(stream):
        digest.update(stream[done:start])
        digest.update(xxhash.xxh3_128_digest(stream[start:end]))
        done = end
    digest.update(stream[done:])
    return digest.digest()


def _big():
    return np.random.default_rng(7).random(LARGE // 8)


def _grid():
    return np.random.default_rng(8).random((300, 400))


#: Values each path of the key takes, small and large, in place and copied (made lazily).
VALUES = {
    "scalars": lambda: [1, 2.5, "text", None, True, b"raw"],
    "a dict out of order": lambda: {"b": [1, {"z": 2, "y": 3}], "a": (4, 5)},
    "an empty dict": lambda: {},
    "a large float64 array": lambda: _big(),
    "a large bytes": lambda: _big().tobytes(),
    "a read-only array": lambda: np.frombuffer(_big().tobytes(), dtype=np.float64),
    "a Fortran-ordered array": lambda: np.asfortranarray(_grid()),
    "a strided array": lambda: _big()[::3],
    "an array just under the in-place size": lambda: np.zeros(IN_PLACE_MIN - 1, dtype=np.uint8),
    "an array of the in-place size": lambda: np.zeros(IN_PLACE_MIN, dtype=np.uint8),
    "one-byte arrays (a cached bytes object each)": lambda: [np.zeros(1, np.uint8) for _ in "abc"],
    "a 0-d array": lambda: np.array(3.5),
    "a datetime64 array (no buffer)": lambda: np.arange(IN_PLACE_MIN).astype("datetime64[s]"),
    "a structured array": lambda: np.zeros(IN_PLACE_MIN, dtype=[("a", "<i4"), ("b", "<f8")]),
    "an object array": lambda: np.array([["x"], {"k": 1}, 3], dtype=object),
    "a memmap-like subclass": lambda: _big().view(np.memmap),
    "a masked array": lambda: np.ma.masked_array(_grid(), mask=_grid() > 0.5),
    "nested arrays": lambda: {"inner": [_big()[: IN_PLACE_MIN // 4], {"deep": _grid()}]},
    "an array.array": lambda: array.array("d", range(100)),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_a_values_store_key_is_that_of_the_pickle_it_had_before(name):
    value = VALUES[name]()
    policy = CachePolicy()
    for args, kwargs in [((value,), {}), ((), {"values": value}), ((1, value), {"k": value})]:
        assert entry_key(PREFIX, policy, args, kwargs) == _entry_key_before(args, kwargs)


@pytest.mark.parametrize("name", list(VALUES))
def test_a_values_store_key_moved_only_if_it_has_a_large_payload(name):
    """The store key of before xxh3 (the sha256 of the whole pickle) is kept by every
    value without a payload of IN_PLACE_MIN bytes or more: those entries are still hit."""
    value = VALUES[name]()
    policy = CachePolicy()
    for args, kwargs in [((value,), {}), ((), {"values": value}), ((1, value), {"k": value})]:
        stream = _stream_before(args, kwargs)
        unchanged = PREFIX + hashlib.sha256(stream).digest()[:16]
        moved = entry_key(PREFIX, policy, args, kwargs) != unchanged
        assert moved == bool(_large_payloads(stream)), (args, kwargs)


def test_a_bytearray_is_pickled_as_it_is_not_as_a_tuple_of_its_ints():
    """The one key that moved: a bytearray passed by keyword (or inside a list or dict)
    was frozen into a tuple of its ints, the key of that tuple, and slow to build."""
    raw = bytearray(b"\x01\x02" * IN_PLACE_MIN)
    assert entry_key(PREFIX, CachePolicy(), (raw,), {}) == _entry_key_before((raw,), {})
    frozen = ((), (("values", raw),))
    assert default_cache_key(values=raw) == _reference_digest(pickle.dumps(frozen, protocol=5))
    others = [bytes(raw), tuple(raw), list(raw)]
    assert all(default_cache_key(values=raw) != default_cache_key(values=o) for o in others)
    assert default_cache_key(values=raw) == default_cache_key(values=bytearray(raw))


def test_the_key_is_the_sha256_of_the_frozen_arguments_pickle():
    key = default_cache_key(3, x={"b": 1, "a": 2})
    assert isinstance(key, bytes) and len(key) == 32
    frozen = ((3,), (("x", (("a", 2), ("b", 1))),))
    assert key == hashlib.sha256(pickle.dumps(frozen, protocol=5)).digest()


class _Recorder:
    """A file that keeps the sizes of the writes a pickler makes."""

    def __init__(self):
        self.sizes = []

    def write(self, data):
        self.sizes.append(memoryview(data).nbytes)


def _write_sizes(obj) -> list[int]:
    recorder = _Recorder()
    pickle.Pickler(recorder, protocol=5).dump(obj)
    return recorder.sizes


def test_the_in_place_size_is_the_size_from_which_pickle_writes_a_payload_on_its_own():
    assert IN_PLACE_MIN - 1 not in _write_sizes(b"s" * (IN_PLACE_MIN - 1))  # in a frame
    assert IN_PLACE_MIN in _write_sizes(b"s" * IN_PLACE_MIN)


#: Objects without a payload of IN_PLACE_MIN bytes or more, some of them pickled in
#: frames of IN_PLACE_MIN bytes or more (which are not payloads: hashed as they are).
_WITHOUT_LARGE_PAYLOADS = {
    "a small tuple": lambda: (1, "a", 2.0),
    "a payload just under the in-place size": lambda: b"u" * (IN_PLACE_MIN - 1),
    "many small ints (large frames)": lambda: list(range(100_000)),
    "many small strings (large frames)": lambda: [str(i) * 40 for i in range(5_000)],
    "two payloads just under the in-place size in one frame": lambda: [
        b"q" * (IN_PLACE_MIN - 9),
        bytearray(IN_PLACE_MIN - 1),
        "é" * (IN_PLACE_MIN // 2 - 1),
    ],
}


@pytest.mark.parametrize("name", list(_WITHOUT_LARGE_PAYLOADS))
def test_without_a_large_payload_the_digest_is_the_sha256_of_the_pickle(name):
    obj = _WITHOUT_LARGE_PAYLOADS[name]()
    stream = pickle.dumps(obj, protocol=5)
    assert not _large_payloads(stream)
    assert pickle_digest(obj) == hashlib.sha256(stream).digest()


def test_frames_of_the_in_place_size_or_more_are_written_and_hashed_as_they_are():
    many = list(range(100_000))
    assert max(_write_sizes(many)) >= IN_PLACE_MIN  # a frame, not a payload
    assert pickle_digest(many) == hashlib.sha256(pickle.dumps(many, protocol=5)).digest()


def _with_large_payloads() -> dict[str, Any]:
    big = np.arange(LARGE // 8, dtype=np.int64)
    return {
        "an array": big,
        "its bytes": big.tobytes(),
        "a bytearray": bytearray(b"x" * LARGE),
        "a read-only PickleBuffer": pickle.PickleBuffer(big),
        "a writable PickleBuffer": pickle.PickleBuffer(bytearray(3 * IN_PLACE_MIN)),
        "a large str": "é" * IN_PLACE_MIN,
        "a payload of exactly the in-place size": b"e" * IN_PLACE_MIN,
        # the frame and the payload's header are one write of IN_PLACE_MIN bytes or more
        "a frame almost full, then bytes": [b"a" * (IN_PLACE_MIN - 20), b"b" * IN_PLACE_MIN],
        "a frame almost full, then a bytearray": [b"a" * (IN_PLACE_MIN - 20), bytearray(LARGE)],
        "a frame almost full, then an array": [b"a" * (IN_PLACE_MIN - 20), big],
        "large frames between payloads": [list(range(30_000)), big.tobytes(), list(range(9))],
        "one payload twice (memoized)": [big.tobytes()] * 2,
    }


@pytest.mark.parametrize("name", list(_with_large_payloads()))
def test_the_digest_is_that_of_the_pickle_with_its_large_payloads_as_their_xxh3(name):
    obj = _with_large_payloads()[name]
    stream = _dumps(obj)
    assert _large_payloads(stream)
    assert pickle_digest(obj) == _reference_digest(stream)
    assert pickle_digest(obj) != hashlib.sha256(stream).digest()


def test_a_payload_that_opens_like_a_frame_is_hashed_as_it_is():
    """Documented: told from a frame by its shape only, it costs sha256's speed."""
    size = 2 * IN_PLACE_MIN
    crafted = b"\x95" + (size - 9).to_bytes(8, "little") + bytes(size - 9)
    assert pickle_digest(crafted) == hashlib.sha256(pickle.dumps(crafted, protocol=5)).digest()
    assert pickle_digest(bytes(crafted)) == pickle_digest(crafted)
    assert pickle_digest(crafted[:-1] + b"\x01") != pickle_digest(crafted)
    assert pickle_digest(bytearray(crafted)) == _reference_digest(
        pickle.dumps(bytearray(crafted), protocol=5)
    )  # only a bytes write can be a frame


def _filled(kind: type, size: int, fill: int) -> Any:
    return kind(bytes([fill]) * size)


_SIZES = st.sampled_from(
    [0, 1, 200, IN_PLACE_MIN - 20, IN_PLACE_MIN - 1, IN_PLACE_MIN, IN_PLACE_MIN + 1, 200_000]
)
_BYTES = st.builds(_filled, st.sampled_from([bytes, bytearray]), _SIZES, st.integers(0, 255))
_LEAVES = st.one_of(
    _BYTES,
    st.builds(pickle.PickleBuffer, _BYTES),  # read-only or writable: bytes or a bytearray
    st.builds(
        lambda size, char: char * (size // len(char.encode())), _SIZES, st.sampled_from("aé€")
    ),
    st.integers(),
    st.text(max_size=5),
)
_VALUES = st.recursive(
    _LEAVES, lambda kids: st.lists(kids, max_size=4) | st.tuples(kids, kids), max_leaves=6
)


@settings(max_examples=60, deadline=None)
@given(_VALUES)
def test_property_the_digest_is_that_of_the_pickle_with_large_payloads_digested(value):
    stream = pickle.dumps(value, protocol=5)
    assert pickle_digest(value) == _reference_digest(stream)
    if not _large_payloads(stream):
        assert pickle_digest(value) == hashlib.sha256(stream).digest()


class _KeyedInside:
    """Pickled as the key of its value, made while the key of its container is made."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (bytes, (default_cache_key(self.value),))


class _Unpicklable:
    def __reduce__(self):
        raise ValueError("not this one")


def test_a_key_made_while_another_is_made_is_its_own():
    big, other = np.arange(LARGE // 8, dtype=np.float64), np.ones(LARGE // 8)
    inner = default_cache_key(other)
    container = [big, _KeyedInside(other), big.tobytes(), _KeyedInside((1, "a"))]
    assert pickle_digest(container) == _reference_digest(_dumps(container))
    assert _dumps(container).count(inner) == 1
    assert default_cache_key(other) == inner  # this thread's pickler still keys right
    assert default_cache_key(1, "a") == hashlib.sha256(pickle.dumps(((1, "a"), ()), 5)).digest()


def test_a_key_that_failed_midway_leaves_the_next_key_right():
    big = np.arange(LARGE // 8, dtype=np.float64)
    with pytest.raises(TypeError, match="not this one"):
        default_cache_key([big, list(range(50_000)), _Unpicklable()])
    assert pickle_digest(big) == _reference_digest(_dumps(big))
    assert pickle_digest((1, 2)) == hashlib.sha256(pickle.dumps((1, 2), protocol=5)).digest()


# -- no copy of the payload ------------------------------------------------------------------


def _peak_bytes(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _large_arguments() -> dict[str, Any]:
    big = np.random.default_rng(3).random(LARGE // 8)
    return {
        "float64 array": big,
        "bytes": big.tobytes(),
        "bytearray": bytearray(big.tobytes()),
        "read-only array": np.frombuffer(big.tobytes(), dtype=np.float64),
        "memoryview": memoryview(big),
        "PickleBuffer": pickle.PickleBuffer(big),
    }


@pytest.mark.parametrize("name", list(_large_arguments()))
def test_keying_a_large_argument_allocates_nothing_of_its_size(name):
    value = _large_arguments()[name]
    policy = CachePolicy()
    for args, kwargs in [((value,), {}), ((), {"values": value}), ((), {"v": [{"w": value}]})]:
        peak = _peak_bytes(lambda args=args, kwargs=kwargs: entry_key(PREFIX, policy, args, kwargs))
        assert peak < LARGE // 16, ("positional" if args else "keyword", peak)


def test_a_strided_array_is_copied_once_into_c_order():
    """Documented: a non-contiguous array costs one copy of its data (``tobytes()``)."""
    strided = np.random.default_rng(4).random(2 * LARGE // 8)[::2]
    peak = _peak_bytes(lambda: default_cache_key(values=strided))
    assert LARGE <= peak < 2 * LARGE


# -- what tells keys apart, for arrays large enough to be hashed in place -------------------


def _keyword_and_nested(value) -> list[bytes]:
    return [default_cache_key(values=value), default_cache_key(v=[{"w": value}])]


def _all_ways(value) -> list[bytes]:
    return [default_cache_key(value), *_keyword_and_nested(value)]


def test_large_arrays_of_the_same_bytes_in_another_dtype_or_shape_are_other_keys():
    unsigned = np.arange(6 * IN_PLACE_MIN, dtype=np.uint8)
    signed = unsigned.view(np.int8)
    wide, tall = unsigned.reshape(2 * IN_PLACE_MIN, 3), unsigned.reshape(3, 2 * IN_PLACE_MIN)
    keys = [_all_ways(array) for array in (unsigned, signed, wide, tall)]
    for way in range(3):
        assert len({k[way] for k in keys}) == 4, way


def test_a_large_array_bytes_and_a_memoryview_of_the_same_data_are_other_keys():
    values = np.arange(LARGE // 8, dtype=np.float64)
    data = values.tobytes()
    keys = [_all_ways(values), _all_ways(data), _all_ways(memoryview(values))]
    for way in range(3):
        assert len({k[way] for k in keys}) == 3, way


def test_equal_large_arrays_are_one_key_whatever_their_memory():
    values = np.random.default_rng(5).random((512, 256))
    twins = [
        values.copy(),
        np.frombuffer(values.tobytes(), dtype=np.float64).reshape(512, 256),  # read-only
        np.asfortranarray(values),  # copied into C order to be keyed
        np.concatenate([values, values], axis=1)[:, :256],  # strided: copied too
    ]
    for twin in twins:
        assert _keyword_and_nested(twin) == _keyword_and_nested(values)
    assert default_cache_key(values.copy()) == default_cache_key(values)  # positional


def test_memoryviews_are_keyed_by_bytes_format_and_shape():
    data = bytearray(range(256)) * (IN_PLACE_MIN // 64)
    for view in (memoryview(data), memoryview(data)[:96]):  # large and small
        assert _all_ways(view) == _all_ways(memoryview(bytes(view)))
        assert _all_ways(view) != _all_ways(view.cast("i"))
        assert _all_ways(view.cast("i")) != _all_ways(view.cast("i", [len(view) // 8, 2]))
    strided = memoryview(data)[::2]
    assert _all_ways(strided) == _all_ways(memoryview(bytes(strided)))


def test_a_large_object_array_is_keyed_by_its_elements():
    first = np.empty(IN_PLACE_MIN, dtype=object)
    first[:] = [[i] for i in range(IN_PLACE_MIN)]
    second = np.empty(IN_PLACE_MIN, dtype=object)
    second[:] = [[i] for i in range(IN_PLACE_MIN)]
    assert _keyword_and_nested(first) == _keyword_and_nested(second)
    second[-1] = ["changed"]
    assert _keyword_and_nested(first) != _keyword_and_nested(second)


@pytest.mark.parametrize("where", ["middle", "last"])
def test_changing_one_byte_of_a_large_argument_changes_its_key(where):
    at = LARGE // 2 + 3 if where == "middle" else LARGE - 1
    values = np.zeros(LARGE // 8)
    raw = bytearray(LARGE)
    before = _all_ways(values) + _all_ways(raw) + _all_ways(bytes(raw))
    values.view(np.uint8)[at] = 1
    raw[at] = 1
    after = _all_ways(values) + _all_ways(raw) + _all_ways(bytes(raw))
    assert all(b != a for b, a in zip(before, after, strict=True))
    assert len(set(after)) == len(after)  # an array, a bytearray and bytes: apart


KEY_SCRIPT = """
import numpy as np
from paralleltask import default_cache_key
big = np.arange(1 << 20, dtype=np.float64)
options = {"b": [1, 2], "a": "x"}
key = default_cache_key(
    big, big.tobytes(), big.reshape(1024, 1024).T, values=big, options=options,
    raw=bytearray(b"r" * 99999),
)
print(key.hex())
"""


def test_the_key_of_large_arguments_is_the_same_in_another_process():
    keys = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", KEY_SCRIPT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr
        keys.add(done.stdout.strip())
    big = np.arange(1 << 20, dtype=np.float64)
    options = {"a": "x", "b": [1, 2]}
    here = default_cache_key(
        big,
        big.tobytes(),
        big.reshape(1024, 1024).T,
        values=big,
        options=options,
        raw=bytearray(b"r" * 99999),
    )
    assert keys == {here.hex()}


# -- what cannot be keyed ---------------------------------------------------------------------


def test_an_argument_that_cannot_be_keyed_is_named_with_its_type():
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"positional argument 1 \(lock\).*cannot pickle"):
        default_cache_key(np.zeros(3), lock)
    with pytest.raises(TypeError, match=r"keyword argument 'guard' \(lock\).*cannot pickle"):
        default_cache_key(1, values=np.zeros(3), guard=lock)
    with pytest.raises(TypeError, match=r"keyword argument 'nested' \(dict\).*cannot pickle"):
        default_cache_key(nested={"inner": [lock]})


def test_a_cached_task_hits_on_an_equal_large_array_and_misses_on_a_changed_one():
    calls = []

    @task(cache_policy=CachePolicy())
    def total(values) -> float:
        calls.append(1)
        return float(values.sum())

    @entrypoint(cache=MemoryStore(), executor=InlineExecutor())
    def body(seed: int) -> list:
        values = np.random.default_rng(seed).random(LARGE // 8)
        changed = values.copy()
        changed[0] += 1
        return [
            total(values).result(),
            total(values.copy()).result(),
            total(values=values).result(),
            total(changed).result(),
        ]

    first, again, keyword, changed = body.invoke(1)
    assert first == again == keyword and changed != first
    assert len(calls) == 3  # the copy hit; a keyword and a changed argument are other keys

    @entrypoint(cache=MemoryStore(), executor=InlineExecutor())
    def locked(_: int) -> float:
        return total(values=threading.Lock()).result()

    with pytest.raises(TypeError, match=r"keyword argument 'values' \(lock\)"):
        locked.invoke(0)
    assert len(calls) == 3
