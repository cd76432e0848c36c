# A checkpointed job of N task calls under durability="sync" on a disk that fails every
# other commit of results (injected), for tests/checkpoints/test_durability.py (kill after "sync").
# argv: <store> <thread_id> <run|resume> <n> <folder>
#   run:    the body makes N calls one at a time; a call whose commit failed fails with
#           StoreError (caught: the body goes on); a call whose future resolved writes
#           resolved-<i> into <folder>. Then it writes "looped" and waits to be killed.
#   resume: no injection; invoke(None) on the thread; prints the result as JSON.
# Every execution of a call writes start-<i>-<ns> into the folder given by the run.
import json
import os
import sys
import time

import lmdb

from paralleltask import LMDBStore, ProcessExecutor, entrypoint, task
from paralleltask.errors import StoreError
from paralleltask.stores import lmdb as lmdb_store

store_path, thread_id, mode, n, folder = sys.argv[1:6]
FOLDER = [folder]

if mode == "run":
    real_write = lmdb_store.LMDBStore._write_batch
    commits = [0]

    def every_other_results_commit_fails(self, batch):
        if any(item[0] == b"writes" for item in batch):
            commits[0] += 1
            if commits[0] % 2 == 0:
                raise lmdb.DiskError("mdb_txn_commit: No space left on device (injected)")
        return real_write(self, batch)

    lmdb_store.LMDBStore._write_batch = every_other_results_commit_fails


@task
def step(folder, i):
    open(os.path.join(folder, f"start-{i}-{time.monotonic_ns()}"), "w").close()
    time.sleep(0.01)
    return i * i + 1


@entrypoint(checkpointer=LMDBStore(store_path), executor=ProcessExecutor(max_workers=2))
def main(n):
    folder = FOLDER[0]
    results = []
    for i in range(n):
        try:
            results.append(step(folder, i).result())
        except StoreError:
            results.append(None)
            continue
        open(os.path.join(folder, f"resolved-{i}"), "w").close()
    if mode == "run":
        open(os.path.join(folder, "looped"), "w").close()
        time.sleep(60)  # killed here: the run never ends, its input record stays last
    return results


config = {"configurable": {"thread_id": thread_id}}
if mode == "run":
    main.invoke(int(n), config, durability="sync")
else:
    print(json.dumps({"result": main.invoke(None, config, durability="sync")}))
sys.stdout.flush()
