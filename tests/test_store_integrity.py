"""Stores that refuse unsafe keys (issue 13, item 7): the key file is made whole and is
refused when others could read or change it, or when it was left empty.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys

import pytest

from paralleltask.errors import StoreError
from paralleltask.stores._format import load_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "scripts")
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
        except BaseException as exc:  # noqa: BLE001 - handed to the parent as it is
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
