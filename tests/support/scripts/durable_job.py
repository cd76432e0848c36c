# A checkpointed job of N task calls, for tests/faults/test_durable_faults.py (kill -9, Ctrl-C).
# argv: <store> <thread_id> <run|resume> <durability> <seq|par> <n> <folder> [<fresh folder>]
#   run:    invoke((n, shape)) on the thread; prints the result as JSON.
#   resume: invoke(None) on the thread, then a fresh run of the same input on another
#           thread (its executions recorded in <fresh folder>); prints both as JSON.
# Every execution of a call writes start-<i>-<pid>-<ns> into <folder> from its worker
# before it sleeps 30 ms; the parent writes resolved-<i>-<ns> there once the call's
# future has resolved (its done callback). The folder is not part of the input: the
# checkpoint does not pin it, so a resume records its executions where it is told.
import json
import os
import sys
import time

from paralleltask import LMDBStore, ProcessExecutor, entrypoint, task

store_path, thread_id, mode, durability, shape, n, folder = sys.argv[1:8]
fresh_folder = sys.argv[8] if len(sys.argv) > 8 else None
FOLDER = [folder]


@task
def step(folder, i):
    open(os.path.join(folder, f"start-{i}-{os.getpid()}-{time.monotonic_ns()}"), "w").close()
    time.sleep(0.03)
    return i * i + 1


def mark_resolved(folder, i):
    def mark(future):
        if not future.cancelled() and future.exception() is None:
            open(os.path.join(folder, f"resolved-{i}-{time.monotonic_ns()}"), "w").close()

    return mark


@entrypoint(checkpointer=LMDBStore(store_path), executor=ProcessExecutor(max_workers=2))
def main(args):
    n, shape = args
    folder = FOLDER[0]
    if shape == "seq":  # one call at a time
        results = []
        for i in range(n):
            future = step(folder, i)
            future.add_done_callback(mark_resolved(folder, i))
            results.append(future.result())
        return results
    futures = [step(folder, i) for i in range(n)]  # all at once, then gather
    for i, future in enumerate(futures):
        future.add_done_callback(mark_resolved(folder, i))
    return [future.result() for future in futures]


ProcessExecutor(max_workers=2).start()
config = {"configurable": {"thread_id": thread_id}}
if mode == "run":
    print(json.dumps({"result": main.invoke((int(n), shape), config, durability=durability)}))
else:
    resumed = main.invoke(None, config, durability=durability)
    FOLDER[0] = fresh_folder
    fresh = main.invoke(
        (int(n), shape), {"configurable": {"thread_id": thread_id + "-fresh"}}, durability="sync"
    )
    print(json.dumps({"result": resumed, "fresh": fresh}))
sys.stdout.flush()
