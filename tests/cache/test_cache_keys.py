"""The default cache key tells apart values that differ in type, dtype or shape."""

from __future__ import annotations

import array

import pytest

from paralleltask import CachePolicy, MemoryStore, default_cache_key, entrypoint, task

np = pytest.importorskip("numpy")


def _keys(value):
    """The default key of ``value`` passed each way a call can pass it."""
    return {
        "positional": default_cache_key(value),
        "keyword": default_cache_key(values=value),
        "in a list": default_cache_key([value]),
        "in a dict": default_cache_key({"values": value}),
    }


def test_the_same_bytes_as_another_dtype_are_another_key():
    unsigned = np.arange(8, dtype=np.uint8)
    signed = unsigned.view(np.int8)
    assert unsigned.tobytes() == signed.tobytes()
    for way, key in _keys(unsigned).items():
        assert key != _keys(signed)[way], way


def test_the_same_bytes_in_another_shape_are_another_key():
    flat = np.arange(12, dtype=np.int32)
    for way, key in _keys(flat.reshape(3, 4)).items():
        assert key != _keys(flat)[way], way
        assert key != _keys(flat.reshape(4, 3))[way], way


def test_equal_arrays_are_one_key():
    assert _keys(np.arange(5.0)) == _keys(np.arange(5.0))


def test_another_buffer_type_with_the_same_bytes_is_another_key():
    values = array.array("b", [1, 2, 3])
    same_bytes = np.array([1, 2, 3], dtype=np.int8)
    assert default_cache_key(values=values) != default_cache_key(values=same_bytes)


@task(cache_policy=CachePolicy())
def describe(values) -> str:
    return f"{values.dtype}:{values.tolist()}"


def test_a_cached_task_answers_each_dtype_with_its_own_value():
    @entrypoint(cache=MemoryStore())
    def body(raw: bytes) -> list:
        unsigned = np.frombuffer(raw, dtype=np.uint8)
        signed = unsigned.view(np.int8)
        return [describe(values=unsigned).result(), describe(values=signed).result()]

    assert body.invoke(bytes([1, 255])) == ["uint8:[1, 255]", "int8:[1, -1]"]


def test_an_object_array_is_keyed_by_its_elements_not_their_addresses():
    holder = np.empty(1, dtype=object)
    holder[0] = ["first"]
    first = _keys(holder)
    holder[0] = ["second"]  # another object, maybe at the same address
    assert first != _keys(holder)
    same = np.empty(1, dtype=object)
    same[0] = ["first"]
    other = np.empty(1, dtype=object)
    other[0] = ["first"]
    assert _keys(same) == _keys(other)
