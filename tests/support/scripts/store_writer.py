# One of two processes writing one LMDB store at once (tests/faults/test_durable_faults.py).
# argv: <store> <small|big|read> <go file>
#   small: 40 short calls on thread "small", durability="sync" (one commit per call);
#   big:   4 calls on thread "big", each returning 2 MB, durability="sync": the store
#          opens with map_size=1 MiB, so its map has to grow while "small" writes;
#   read:  prints both threads' get_state values (the big blobs as sha256 digests).
# Writers start their pool, print "ready", then wait for <go file> so that both runs
# overlap.
import hashlib
import json
import os
import random
import sys
import time

from paralleltask import LMDBStore, ProcessExecutor, entrypoint, task

store_path, kind, go_file = sys.argv[1:4]
BLOB_SIZE = 2 * 1024 * 1024


@task
def square(x):
    time.sleep(0.005)
    return x * x


@task
def blob(i):
    return random.Random(i).randbytes(BLOB_SIZE)


store = LMDBStore(store_path, map_size=1 << 20)
executor = ProcessExecutor(max_workers=2)


@entrypoint(checkpointer=store, executor=executor)
def small(n):
    results = []
    for start in range(0, n, 4):
        results += [f.result() for f in [square(x) for x in range(start, min(n, start + 4))]]
    return results


@entrypoint(checkpointer=store, executor=executor)
def big(n):
    return [f.result() for f in [blob(i) for i in range(n)]]


def config(thread_id):
    return {"configurable": {"thread_id": thread_id}}


if kind == "read":
    small_values = small.get_state(config("small")).values
    big_values = big.get_state(config("big")).values
    digests = [hashlib.sha256(b).hexdigest() for b in big_values]
    print(json.dumps({"small": small_values, "big": digests}))
    sys.exit(0)

executor.start()
print("ready", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("no go file")
    time.sleep(0.005)
if kind == "small":
    result = small.invoke(40, config("small"), durability="sync")
    print(json.dumps({"ok": result == [x * x for x in range(40)]}))
else:
    result = big.invoke(4, config("big"), durability="sync")
    expected = [random.Random(i).randbytes(BLOB_SIZE) for i in range(4)]
    print(json.dumps({"ok": result == expected}))
