"""Stores that refuse bad bytes, unsafe keys and unsafe folders (issue 13, items 6, 7, 11).

Every malformed value is a miss (cache) or a StoreError naming the store (checkpoints);
a damaged data file is refused at open with what is wrong, never a signal; the key file
is made whole and is refused when others could read or change it; a store folder others
could write, or one of another user's, is refused with how to fix it; a store we cannot
write opens for reading.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile

import lmdb
import pytest

from paralleltask import CachePolicy, LMDBStore, entrypoint, task
from paralleltask.errors import StoreError
from paralleltask.stores import MISS
from paralleltask.stores._format import load_key
from tests.support import ROOT, SCRIPTS

OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def script(name, *args, timeout=120):
    return subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def raw_put(path, name, key, data):
    """Put ``data`` under ``key`` with lmdb itself, in a forked child (this process must
    not hold a second environment on a path), so nothing of ours shapes the bytes."""
    in_child(lambda: _raw_put(path, name, key, data))


def _raw_put(path, name, key, data):
    env = lmdb.open(str(path), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(key, data, db=env.open_db(name, txn=txn))
    env.close()


def in_child(action, uid=None):
    """``action()``'s result, run in a forked child (as ``uid`` if given): a fresh
    process for the store's per-process handles, without starting an interpreter."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        os.close(read)
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            outcome = ("ok", action())
        except BaseException as exc:
            outcome = ("raised", f"{type(exc).__name__}: {exc}")
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    return pickle.loads(data)


def filled_store(path, entries=200, size=6000):
    """A store (made in a child) with ``entries`` cache values and 20 checkpoints."""

    def fill():
        store = LMDBStore(path)
        for i in range(entries):
            store.cache_put(i.to_bytes(32, "big"), os.urandom(size), None)
        for seq in range(20):
            store.checkpoint_put("t", {"seq": seq, "values": list(range(50))})
        store.flush()

    assert in_child(fill)[0] == "ok"


# -- 1. bad bytes -----------------------------------------------------------------------


@task(cache_policy=CachePolicy())
def doubled(x):
    return 2 * x


def test_a_cache_value_cut_short_is_a_miss_and_purge_expired_still_works(tmp_path):
    path = tmp_path / "store"
    store = LMDBStore(path)

    @entrypoint(cache=store)
    def main(x):
        return doubled(x).result()

    assert main.invoke(21) == 42
    handle = store._handle()
    db = store._db(handle, b"cache")
    with handle.env.begin(write=True) as txn:
        [key] = [k for k, _ in txn.cursor(db=db)]
        txn.put(key, b"\x01\x02\x03", db=db)  # shorter than its 8-byte expiry stamp
        txn.put(b"e" * 32, b"", db=db)
    store.cache_put(b"x" * 32, "gone", ttl=0.001)
    store.flush()
    assert store.cache_get(key) is MISS and store.cache_get(b"e" * 32) is MISS
    assert main.invoke(21) == 42  # a miss: the task ran again and its put replaced it
    assert store.purge_expired() == 1  # the expired entry; the short one is left alone
    assert store.cache_get(b"e" * 32) is MISS and store.cache_get(key) == 42


def test_an_lmdb_error_while_following_a_resize_is_a_store_error(tmp_path):
    """Another process grew the map (MapResizedError) and adopting its size fails too:
    the reader gets a StoreError naming the store, lmdb's error as its cause."""
    store = LMDBStore(tmp_path / "store")
    handle = store._handle()
    real = handle.env

    class Resized:  # the environment, as it looks while set_mapsize keeps failing
        def __getattr__(self, name):
            return getattr(real, name)

        def begin(self, **kwargs):
            raise lmdb.MapResizedError("injected: the map grew elsewhere")

        def set_mapsize(self, size):
            raise lmdb.Error("injected: set_mapsize failed")

    handle.env = Resized()
    try:
        with pytest.raises(StoreError, match="set_mapsize failed") as raised:
            store.cache_get(b"k" * 32)
    finally:
        handle.env = real
    assert raised.value.path == store.path and isinstance(raised.value.__cause__, lmdb.Error)


def test_a_data_file_cut_to_half_is_refused_at_open_not_a_signal(tmp_path):
    source, cut = tmp_path / "source", tmp_path / "cut"
    filled_store(source)
    cut.mkdir(mode=0o700)
    shutil.copy(source / "data.mdb", cut / "data.mdb")
    size = os.path.getsize(cut / "data.mdb")
    os.truncate(cut / "data.mdb", size // 2)
    done = script("read_store.py", cut, 200, "t")
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr[-2000:])
    assert str(cut / "data.mdb") in done.stdout and "cut short" in done.stdout
    assert os.path.getsize(cut / "data.mdb") == size // 2  # left as it was
    assert script("read_store.py", source, 200, "t").stdout.startswith("hits 200")


def test_garbage_over_pages_is_a_store_error_or_a_miss_never_a_crash(tmp_path):
    import random

    source = tmp_path / "source"
    filled_store(source, entries=300, size=700)
    pages = os.path.getsize(source / "data.mdb") // 4096
    outcomes = set()
    for seed in range(12):
        rnd = random.Random(seed)
        damaged = tmp_path / f"damaged-{seed}"
        damaged.mkdir(mode=0o700)
        shutil.copy(source / "data.mdb", damaged / "data.mdb")
        with open(damaged / "data.mdb", "r+b") as f:
            for _ in range(rnd.randint(1, 4)):  # whole pages of garbage, meta pages too
                f.seek(rnd.randrange(0, pages) * 4096)
                f.write(rnd.randbytes(4096))
        done = script("read_store.py", damaged, 300, "t")
        assert done.returncode in (0, 3), (seed, done.returncode, done.stderr[-2000:])
        assert done.returncode == 0 or str(damaged) in done.stdout
        outcomes.add(done.returncode)
    assert 3 in outcomes  # some damage was refused (and none crashed or leaked lmdb's)


def test_an_empty_data_file_is_refused_but_not_one_being_created(tmp_path):
    path = tmp_path / "store"
    filled_store(path, entries=3)
    os.truncate(path / "data.mdb", 0)  # what a crash or a bad copy can leave
    with pytest.raises(StoreError, match="is empty") as refused:
        in_child_raising(lambda: LMDBStore(path))
    assert str(path / "data.mdb") in str(refused.value)
    assert os.path.getsize(path / "data.mdb") == 0  # not made a fresh store over it

    # A brand-new folder is a fresh store, even while its creator (another process,
    # holding LMDB's creation lock) has made data.mdb but not yet written its header.
    template = tmp_path / "template"
    in_child(lambda: LMDBStore(template))
    fresh = tmp_path / "fresh"
    creator = subprocess.Popen(
        [sys.executable, "-c", CREATOR, str(fresh), str(template / "data.mdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert creator.stdout.readline() == "locked\n"
    assert os.path.getsize(fresh / "data.mdb") == 0
    assert in_child(lambda: LMDBStore(fresh).cache_get(b"k" * 32) is MISS) == ("ok", True)
    assert creator.wait(timeout=30) == 0


CREATOR = """
import fcntl, os, shutil, sys, time
folder, header = sys.argv[1:3]
os.mkdir(folder, 0o700)
lock = os.open(os.path.join(folder, "lock.mdb"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(lock, fcntl.LOCK_EX, 1, 0)  # as LMDB's first opener: byte 0, exclusive
open(os.path.join(folder, "data.mdb"), "wb").close()
print("locked", flush=True)
time.sleep(0.5)
shutil.copyfile(header, os.path.join(folder, "data.mdb"))
fcntl.lockf(lock, fcntl.LOCK_UN, 1, 0)
"""


def test_a_data_file_of_the_other_word_size_is_refused_by_name(tmp_path):
    """LMDB's files differ between 32- and 64-bit builds (page numbers are words): a
    file of the other size is named as such, not "not an LMDB file"."""
    import struct

    word = 12 - struct.calcsize("P")  # the size this build is not
    w = "Q" if word == 8 else "I"
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    pages = []
    for pgno in (0, 1):
        header = struct.pack(f"={w}HHHH", pgno, 0, 0x08, 0, 0)  # P_META
        free = struct.pack(f"=IHH5{w}", 4096, 0, 0, 0, 0, 0, 0, 2 ** (8 * word) - 1)
        main = struct.pack(f"=IHH5{w}", 0, 0, 0, 0, 0, 0, 0, 2 ** (8 * word) - 1)
        meta = struct.pack(f"=II{w}{w}", 0xBEEFC0DE, 1, 0, 1 << 20) + free + main
        meta += struct.pack(f"={w}{w}", 1, pgno)  # last_pg, txnid
        pages.append((header + meta).ljust(4096, b"\0"))
    (folder / "data.mdb").write_bytes(b"".join(pages))
    with pytest.raises(StoreError, match=f"{8 * word}-bit build of LMDB"):
        in_child_raising(lambda: LMDBStore(folder))


def in_child_raising(action):
    """Run ``action`` in a child; re-raise its StoreError here (message kept)."""
    kind, outcome = in_child(action)
    if kind == "raised":
        name, _, message = outcome.partition(": ")
        raise StoreError(message) if name == "StoreError" else AssertionError(outcome)
    return outcome


# -- 2. the key file --------------------------------------------------------------------


def test_eight_processes_racing_for_the_key_file_all_get_one_whole_key(tmp_path):
    done = script("key_race.py", tmp_path, 30, 8)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = done.stdout.splitlines()
    assert len(trials) == 30
    assert all(len(outcomes.split()) == 1 and "Error" not in outcomes for outcomes in trials)
    leftovers = [n for n in os.listdir(tmp_path / "trial-0") if n != "store.key"]
    assert leftovers == []  # the temporary files were removed
    assert stat.S_IMODE(os.stat(tmp_path / "trial-0" / "store.key").st_mode) == 0o600


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "store.key"
    monkeypatch.setenv("PARALLELTASK_KEY_FILE", str(path))
    return path


def test_a_key_file_the_group_or_others_can_read_is_refused(key_file):
    key = load_key()
    os.chmod(key_file, 0o644)
    with pytest.raises(StoreError, match=f"chmod 600 {key_file}") as refused:
        load_key()
    assert "PARALLELTASK_STORE_KEY" in str(refused.value) and refused.value.path == str(key_file)
    os.chmod(key_file, 0o620)
    with pytest.raises(StoreError, match="mode 0620"):
        load_key()
    os.chmod(key_file, 0o600)
    assert load_key() == key  # the same key, once fixed


def test_a_key_file_that_is_a_symlink_is_refused(key_file, tmp_path):
    real = tmp_path / "real.key"
    real.write_bytes(os.urandom(32))
    os.chmod(real, 0o600)
    key_file.parent.mkdir()
    key_file.symlink_to(real)
    with pytest.raises(StoreError, match="symbolic link"):
        load_key()
    assert key_file.is_symlink()  # left as it was


@as_root
def test_a_key_file_another_user_owns_is_refused(key_file):
    load_key()
    os.chown(key_file, OTHER_UID, OTHER_UID)
    with pytest.raises(StoreError, match=f"owned by uid {OTHER_UID}"):
        load_key()


def test_an_empty_key_file_left_by_a_crash_is_refused_and_kept(key_file):
    key_file.parent.mkdir()
    key_file.touch(mode=0o600)
    with pytest.raises(StoreError, match=f"holds 0 bytes.*rm {key_file}") as refused:
        load_key()
    assert str(key_file) in str(refused.value)
    assert key_file.read_bytes() == b""  # no new key over it: the owner decides


def test_a_read_only_home_without_a_key_names_both_variables(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PARALLELTASK_KEY_FILE")
    if os.geteuid() == 0:
        os.chmod(tmp_path, 0o755)  # let "nobody" reach a home it may not write
        outcome = in_child(load_key, uid=OTHER_UID)
    else:
        os.chmod(home, 0o555)
        outcome = in_child(load_key)
    kind, message = outcome
    assert kind == "raised" and message.startswith("StoreError"), outcome
    assert "PARALLELTASK_STORE_KEY" in message and "PARALLELTASK_KEY_FILE" in message


# -- 3. store folders and paths ---------------------------------------------------------


def test_a_store_folder_others_can_write_or_another_user_owns_is_refused(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o775)
    with pytest.raises(StoreError, match=f"chmod 700 {folder}") as refused:
        LMDBStore(folder)
    assert refused.value.path == str(folder) and os.listdir(folder) == []
    os.chmod(folder, 0o755)  # readable by others is fine: its files are made 0600
    LMDBStore(folder)
    assert stat.S_IMODE(os.stat(folder / "data.mdb").st_mode) == 0o600
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, OTHER_UID, OTHER_UID)
        with pytest.raises(StoreError, match=f"owned by uid {OTHER_UID}"):
            LMDBStore(theirs)


def test_store_paths_expand_tilde_and_refuse_empty_and_non_strings(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    store = LMDBStore("~/x")
    assert store.path == os.path.realpath(tmp_path / "home" / "x")
    assert not (tmp_path / "~").exists()
    with pytest.raises(ValueError, match="empty"):
        LMDBStore("")
    with pytest.raises(TypeError, match="got int: 5"):
        LMDBStore(5)
    with pytest.raises(TypeError, match="bytes"):
        LMDBStore(b"x")
    assert LMDBStore(tmp_path / "home" / "x").path == store.path  # os.PathLike


@pytest.mark.parametrize("owner", ["ours", "root's"])
def test_a_read_only_store_reads_and_refuses_every_write(tmp_path, monkeypatch, owner):
    """Our own store made read-only (chmod), or one root owns (a store baked into an
    image, run as another user): reads work, every write is refused by name."""
    if owner == "root's" and os.geteuid() != 0:
        pytest.skip("a root-owned store read by another user needs root to set up")
    monkeypatch.setenv("PARALLELTASK_STORE_KEY", "a key both users share")
    base = tempfile.mkdtemp(prefix="ro-store-")  # reachable by "nobody" (not under /root)
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "store")

        def fill():
            store = LMDBStore(path)
            store.cache_put(b"k" * 32, "cached", None)
            store.checkpoint_put("t", {"seq": 0, "values": 7})
            store.write_put("t", 0, b"o\x00\x00\x00\x00", ("a", 1))
            store.flush()

        assert in_child(fill)[0] == "ok"
        owner_uid = os.geteuid() if owner == "root's" or os.geteuid() != 0 else OTHER_UID
        for name in ("data.mdb", "lock.mdb"):
            os.chown(os.path.join(path, name), owner_uid, owner_uid)
            os.chmod(os.path.join(path, name), 0o444)
        os.chown(path, owner_uid, owner_uid)
        os.chmod(path, 0o555)

        def read_then_write():
            store = LMDBStore(path)
            seen = [
                store.read_only,
                store.cache_get(b"k" * 32),
                store.cache_get(b"z" * 32) is MISS,
                store.checkpoint_get("t")["values"],
                store.write_get("t", 0, b"o\x00\x00\x00\x00"),
                store.checkpoint_get("never") is None,
                list(store.write_items("never", 0)),
            ]
            for write in (store.cache_clear, store.purge_expired, lambda: store.thread_delete("t")):
                try:
                    write()
                    seen.append("written")
                except StoreError as exc:
                    seen.append(path in str(exc) and "read-only" in str(exc))
            return seen

        uid = OTHER_UID if os.geteuid() == 0 else None
        assert in_child(read_then_write, uid=uid) == (
            "ok",
            [True, "cached", True, 7, ("a", 1), True, [], True, True, True],
        )
    finally:
        shutil.rmtree(base)


def test_open_refusals_and_unreadable_checkpoints_are_store_errors_not_value_errors(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("hello")
    with pytest.raises(StoreError, match="is a file") as refused:
        LMDBStore(a_file)
    assert not isinstance(refused.value, ValueError) and refused.value.path == str(a_file)
    path = tmp_path / "store"
    store = LMDBStore(path)
    store.checkpoint_put("t", {"seq": 0, "values": 1})
    store.flush()
    handle = store._handle()
    db = store._db(handle, b"checkpoints")
    with handle.env.begin(write=True) as txn:
        [key] = [k for k, _ in txn.cursor(db=db)]
        txn.put(key, b"PT1 not sealed", db=db)
    with pytest.raises(StoreError, match="thread 't' was refused unread") as refused:
        store.checkpoint_get("t")
    assert refused.value.path == str(path)


# -- found in review: users who are not root, read-only caches, fork -------------------


@task
def plus_one(x):
    return x + 1


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to another user: needs root")
def test_a_user_who_is_not_root_can_checkpoint(monkeypatch):
    """The counters' folder must be searchable by its owner (lmdb.open makes it 0600,
    which only root can enter): a checkpointed invoke as uid 65534."""
    monkeypatch.setenv("PARALLELTASK_STORE_KEY", "a key of this test")
    base = tempfile.mkdtemp(prefix="user-store-")  # reachable by "nobody" (not under /root)
    try:
        os.chown(base, OTHER_UID, OTHER_UID)

        def run_twice():
            from paralleltask import InlineExecutor

            store = LMDBStore(os.path.join(base, "store"))

            @entrypoint(checkpointer=store, executor=InlineExecutor())
            def main(x):
                return plus_one(x).result()

            config = {"configurable": {"thread_id": "t"}}
            return [main.invoke(1, config), main.invoke(2, config)]

        assert in_child(run_twice, uid=OTHER_UID) == ("ok", [2, 3])
    finally:
        shutil.rmtree(base)


def test_a_read_only_store_answers_cache_hits_and_computes_misses(tmp_path, monkeypatch):
    """A store baked into an image: a hit is answered, a miss is computed and returned
    (not kept: a warning, once), never a failed call."""
    path = tmp_path / "store"
    cached = task(cache_policy=CachePolicy())(plus_one.func)

    def job(store):
        from paralleltask import InlineExecutor

        @entrypoint(cache=store, executor=InlineExecutor())
        def main(xs):
            return [cached(x).result() for x in xs]

        return main

    assert job(LMDBStore(path)).invoke([1]) == [2]

    def read_only_run():
        import warnings

        from paralleltask.stores import _lmdbopen

        _lmdbopen.writable = lambda _path: False  # as a read-only mount would
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            store = LMDBStore(path)
            values = [job(store).invoke([1, 5]), job(store).invoke([5])]
        return (
            values,
            store.cache_get(b"never" * 6 + b"..") is MISS,
            [str(w.message) for w in caught if "read-only" in str(w.message)],
        )

    kind, (values, missing, warned) = in_child(read_only_run)
    assert kind == "ok" and values == [[2, 6], [6]] and missing
    assert len(warned) == 1 and str(path) in warned[0]


def test_a_forked_child_opens_the_store_its_parent_has_open(tmp_path):
    store = LMDBStore(tmp_path / "store")
    store.cache_put(b"k" * 32, "parent's", None)
    store.checkpoint_add("t", lambda seq: {"seq": seq, "values": 1})
    store.flush()

    def in_the_child():
        mine = LMDBStore(tmp_path / "store")
        mine.cache_put(b"c" * 32, "child's", None)
        record = mine.checkpoint_add("t", lambda seq: {"seq": seq, "values": 2})
        mine.flush()
        return mine.cache_get(b"k" * 32), record["seq"]

    assert in_child(in_the_child) == ("ok", ("parent's", 1))
    assert store.cache_get(b"c" * 32) == "child's"  # the parent's handle still works
    assert store.checkpoint_get("t")["values"] == 2
