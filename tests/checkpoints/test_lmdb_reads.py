"""Reads of an LMDB store run beside this process's writes: a cache hit or a resume's
reads never wait for a commit (its fsync), only for a map resize, which waits for them."""

from __future__ import annotations

import threading
import time

import pytest

from paralleltask import LMDBStore
from paralleltask.stores._lmdbopen import ReadersLock


def _in_thread(func) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(func()), daemon=True)
    thread.start()
    return thread, out


def test_a_cache_hit_and_a_checkpoint_read_do_not_wait_for_a_write_in_progress(tmp_path):
    store = LMDBStore(tmp_path / "store")
    store.cache_put(b"k" * 32, "value", None)
    store.checkpoint_put("t", {"seq": 0, "values": 1})
    store.flush()
    handle = store._handle()
    with handle.lock:  # what a write holds while it commits (and fsyncs)
        hit, got = _in_thread(lambda: store.cache_get(b"k" * 32))
        hit.join(2)
        latest, checkpoint = _in_thread(lambda: store.checkpoint_get("t"))
        latest.join(2)
        assert not hit.is_alive() and got == ["value"]
        assert not latest.is_alive() and checkpoint == [{"seq": 0, "values": 1}]


def test_a_resize_waits_for_the_open_reads_and_new_reads_wait_for_it():
    class Env:
        sizes: list = []

        def set_mapsize(self, size):
            self.sizes.append(size)

    readers, env = ReadersLock(), Env()
    readers.__enter__()  # a read in progress
    resize, _ = _in_thread(lambda: readers.resize(env, 1 << 30))
    time.sleep(0.05)
    assert resize.is_alive() and env.sizes == []  # it waits for the read
    late, entered = _in_thread(lambda: readers.__enter__())
    time.sleep(0.05)
    assert late.is_alive() and entered == []  # a new read waits for the resize
    readers.__exit__(None, None, None)
    resize.join(2)
    late.join(2)
    assert env.sizes == [1 << 30] and entered == [None]
    readers.__exit__(None, None, None)


def test_a_failed_resize_lets_reads_go_on():
    class Env:
        def set_mapsize(self, size):
            raise OSError("no space")

    readers = ReadersLock()
    with pytest.raises(OSError):
        readers.resize(Env(), 1)
    reader, entered = _in_thread(lambda: readers.__enter__())
    reader.join(2)
    assert entered == [None]
