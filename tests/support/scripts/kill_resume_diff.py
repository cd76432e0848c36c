# One checkpointed job, on LangGraph (SqliteSaver) or paralleltask (LMDBStore), for
# tests/checkpoints/test_kill_resume_differential.py: killed with SIGKILL mid-run, then resumed.
# argv: <langgraph|paralleltask> <store path> <run|resume> <seq|par> <n> <folder>
# Each execution of call i writes start-<i>-<ns> into <folder> when it starts and
# end-<i>-<ns> when its work is done (just before it returns). Call i works for
# 40 ms x (i + 1), so concurrent calls finish one after another.
import json
import os
import sys
import time

impl, store_path, mode, shape, n, folder = sys.argv[1:7]

if impl == "langgraph":
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.func import entrypoint, task

    checkpointer = SqliteSaver(sqlite3.connect(store_path, check_same_thread=False))
    kwargs = {}
else:
    from paralleltask import LMDBStore, ProcessExecutor, entrypoint, task

    checkpointer = LMDBStore(store_path)
    kwargs = {"executor": ProcessExecutor(max_workers=4).start()}


def mark(kind, i):
    open(os.path.join(folder, f"{kind}-{i}-{time.monotonic_ns()}"), "w").close()


@task
def work(i):
    mark("start", i)
    time.sleep(0.04 * (i + 1))
    mark("end", i)
    return i * i


@entrypoint(checkpointer=checkpointer, **kwargs)
def main(job):
    count, how = job
    if how == "seq":
        return [work(i).result() for i in range(count)]
    futures = [work(i) for i in range(count)]
    return [f.result() for f in futures]


config = {"configurable": {"thread_id": "diff"}}
given = (int(n), shape) if mode == "run" else None
print(json.dumps(main.invoke(given, config, durability="sync")), flush=True)
