"""The cache: answered in the parent, keyed by identity + key_func, shared through LMDB."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paralleltask import CachePolicy, LMDBStore, MemoryStore, entrypoint, task
from paralleltask.errors import StoreError
from paralleltask.stores import MISS
from tests.support import ROOT
from tests.support.cache_job import cached_square, record, runs, square_job


@task(cache_policy=CachePolicy())
def cached_cube(folder, x, *, offset=0):
    record(folder, x)
    return x * x * x + offset


@pytest.fixture(params=["memory", "lmdb"])
def store(request, tmp_path_factory):
    if request.param == "memory":
        return MemoryStore()
    return LMDBStore(tmp_path_factory.mktemp("store"))


def test_a_hit_runs_nothing_and_returns_the_miss_value(store, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    main = square_job(store)
    assert main.invoke((str(folder), [1, 2, 3])) == [1, 4, 9]
    assert main.invoke((str(folder), [1, 2, 3])) == [1, 4, 9]
    assert runs(folder) == 3


def test_hits_stream_langgraphs_cached_marker(store, tmp_path):
    main = square_job(store)
    main.invoke((str(tmp_path), [2]))
    assert list(main.stream((str(tmp_path), [2]))) == [
        {"cached_square": 4, "__metadata__": {"cached": True}},
        {"main": [4]},
    ]


def test_keyword_arguments_and_task_identity_are_part_of_the_key(store, tmp_path):
    @entrypoint(cache=store)
    def main(folder):
        return (
            cached_square(folder, 2).result(),
            cached_square(folder, 2, offset=1).result(),
            cached_cube(folder, 2).result(),
        )

    assert main.invoke(str(tmp_path)) == (4, 5, 8)
    assert main.invoke(str(tmp_path)) == (4, 5, 8)
    assert runs(tmp_path) == 3


def test_entries_expire_after_ttl_and_can_be_purged(store, tmp_path):
    @task(cache_policy=CachePolicy(ttl=0.3))
    def brief(folder, x):
        record(folder, x)
        return x

    @entrypoint(cache=store)
    def main(folder):
        return brief(folder, 1).result()

    main.invoke(str(tmp_path))
    main.invoke(str(tmp_path))
    assert runs(tmp_path) == 1
    time.sleep(0.35)
    assert store.purge_expired() == 1
    main.invoke(str(tmp_path))
    assert runs(tmp_path) == 2


def test_editing_a_function_invalidates_its_entries(store, tmp_path):
    def version_one(folder, x):
        record(folder, x)
        return x + 1

    def version_two(folder, x):
        record(folder, x)
        return x + 2

    results = []
    for func in (version_one, version_two, version_one):
        func.__name__ = func.__qualname__ = "same_name"
        edited = task(cache_policy=CachePolicy())(func)

        @entrypoint(cache=store)
        def main(folder, edited=edited):
            return edited(folder, 1).result()

        results.append(main.invoke(str(tmp_path)))
    assert results == [2, 3, 2]
    assert runs(tmp_path) == 2  # the third run hit version one's entry


def test_task_and_entrypoint_clear_cache(store, tmp_path):
    @entrypoint(cache=store, cache_policy=CachePolicy())
    def main(folder):
        return cached_square(folder, 3).result()

    assert main.invoke(str(tmp_path)) == 9
    main.clear_cache()  # the run's own entry: the body runs again, its task still hits
    assert main.invoke(str(tmp_path)) == 9 and runs(tmp_path) == 1
    cached_square.clear_cache(store)
    main.clear_cache()
    assert main.invoke(str(tmp_path)) == 9 and runs(tmp_path) == 2


def test_without_a_cache_the_policy_is_inert(tmp_path):
    @entrypoint()
    def main(folder):
        return cached_square(folder, 2).result()

    main.invoke(str(tmp_path))
    main.invoke(str(tmp_path))
    assert runs(tmp_path) == 2
    with pytest.raises(ValueError, match="No cache is set"):
        main.clear_cache()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=8))
def test_property_hit_equals_miss(xs):
    store = MemoryStore()
    folder = os.path.join(ROOT, ".hypothesis-runs")
    os.makedirs(folder, exist_ok=True)
    main = square_job(store)
    assert main.invoke((folder, xs)) == main.invoke((folder, xs)) == [x * x for x in xs]


def test_lmdb_cache_survives_the_process_and_is_shared(tmp_path):
    path, folder = tmp_path / "store", tmp_path / "runs"
    folder.mkdir()
    script = (
        "from tests.support.cache_job import square_job; from paralleltask import LMDBStore;"
        f"print(square_job(LMDBStore({str(path)!r})).invoke(({str(folder)!r}, [5, 6])))"
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[25, 36]"
    assert square_job(LMDBStore(path)).invoke((str(folder), [5, 6])) == [25, 36]
    assert runs(folder) == 2  # computed once, by the first process


class Booby:
    """Unpickling one writes a file: proof of whether a stored value was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_foreign_or_tampered_values_are_misses_and_never_unpickled(tmp_path, monkeypatch):
    path, proof = tmp_path / "store", tmp_path / "unpickled"
    monkeypatch.setenv("PARALLELTASK_STORE_KEY", "someone else's key")
    foreign = LMDBStore(path)
    foreign.cache_put(b"k" * 32, Booby(str(proof)), None)  # a foreign store
    foreign.flush()
    monkeypatch.delenv("PARALLELTASK_STORE_KEY")
    ours = LMDBStore(path)
    assert ours.cache_get(b"k" * 32) is MISS and not proof.exists()

    ours.cache_put(b"t" * 32, 41, None)
    ours.flush()
    assert ours.cache_get(b"t" * 32) == 41
    handle = ours._handle()  # tamper: flip a byte of the payload
    env, db = handle.env, ours._db(handle, b"cache")
    with env.begin(write=True) as txn:
        data = bytearray(txn.get(b"t" * 32, db=db))
        data[-2] ^= 1
        txn.put(b"t" * 32, bytes(data), db=db)
    assert ours.cache_get(b"k" * 32) is MISS and ours.cache_get(b"t" * 32) is MISS
    assert not proof.exists()


def test_a_tiny_map_grows_to_take_50_mb(tmp_path):
    store = LMDBStore(tmp_path / "store", map_size=64 * 1024)
    blob = os.urandom(1024 * 1024)
    for i in range(50):
        store.cache_put(i.to_bytes(32, "big"), blob, None)
    store.flush()  # puts are committed by a writer thread, in batches
    assert store.cache_get((49).to_bytes(32, "big")) == blob


def test_garbage_path_fails_clearly_and_is_left_as_it_was(tmp_path):
    folder = tmp_path / "garbage"
    folder.mkdir()
    (folder / "data.mdb").write_bytes(b"not lmdb " * 1000)
    with pytest.raises(StoreError, match="garbage"):
        LMDBStore(folder)
    assert (folder / "data.mdb").read_bytes() == b"not lmdb " * 1000
    a_file = tmp_path / "a-file"
    a_file.write_text("hello")
    with pytest.raises(StoreError, match="a-file"):
        LMDBStore(a_file)
    assert a_file.read_text() == "hello"


def test_store_folder_is_owner_only(tmp_path):
    LMDBStore(tmp_path / "store")
    assert (os.stat(tmp_path / "store").st_mode & 0o777) == 0o700


def test_bad_cache_arguments_are_refused():
    with pytest.raises(TypeError, match="store"):
        entrypoint(cache={})
    with pytest.raises(TypeError, match="CachePolicy"):
        task(cache_policy=5)
    with pytest.raises(ValueError, match="ttl"):
        task(cache_policy=CachePolicy(ttl=-1))


@task(cache_policy=CachePolicy())
def nested_cached_cube(folder, x):
    record(folder, ("cube", x))
    return x**3


@task
def sum_of_cubes(folder, xs):
    return sum(f.result() for f in [nested_cached_cube(folder, x) for x in xs])


def test_a_task_called_in_a_task_in_a_worker_uses_the_runs_cache(tmp_path):
    """The worker asks the parent for the nested call's entry, and sends it the result
    to keep: the second run runs no nested call at all."""
    folder = tmp_path / "runs"
    folder.mkdir()
    store = LMDBStore(tmp_path / "store")

    @entrypoint(cache=store)
    def main(xs):
        return sum_of_cubes(str(folder), xs).result()

    assert main.invoke([1, 2, 3]) == 36
    assert len(os.listdir(folder)) == 3
    assert main.invoke([1, 2, 3, 4]) == 100
    assert sorted(os.listdir(folder))[-1].startswith("('cube', 4)")
    assert len(os.listdir(folder)) == 4  # only cube(4) ran again
