# A parent that the test kills with SIGKILL (this process alone, not its group) while
# its workers are busy; every worker must then exit on its own (pipe EOF), none orphaned.
# argv: <folder for pid files> <"sync" | "async" | "crashing" | "forked" | "buffers">
#   sync:     a pure-Python spin, a sleep in C and a spin under a (long) timeout
#   async:    six async calls awaiting asyncio.sleep, spread over the workers
#   crashing: one worker spins while the others keep crashing (os._exit) and being
#             replaced, so the kill lands while replacements boot
#   forked:   as sync, after forking a child that outlives the parent (it prints
#             "holder <pid>" first): it holds the parent's end of every worker's pipe,
#             so the workers never see EOF and must notice their parent's death
#   buffers:  three calls spin holding 4 MiB arrays received through shared memory
#             (anonymous memfd segments: nothing named may be left when all are gone)
# Each call writes <pid>.<kind>.pid in the folder once it runs.
import asyncio
import os
import sys
import time

from paralleltask import ProcessExecutor, WorkerCrashedError, entrypoint, task

folder, mode = sys.argv[1], sys.argv[2]
EXECUTOR = ProcessExecutor(max_workers=3)


def mark(kind):
    with open(os.path.join(folder, f"{os.getpid()}.{kind}.pid"), "w") as f:
        f.write(kind)


def busy_loop(seconds):
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


@task
def spin(seconds):
    mark("spin")
    return busy_loop(seconds)


@task
def nap(seconds):
    mark("nap")
    time.sleep(seconds)
    return seconds


@task(timeout=600)
def timed_spin(seconds):
    mark("timed")
    return busy_loop(seconds)


@task
async def async_nap(seconds):
    mark("async")
    await asyncio.sleep(seconds)
    return seconds


@task
def hold(array, seconds):
    mark("buffers")
    return busy_loop(seconds) + int(array[0])


@task
def crash(code):
    mark("crash")
    os._exit(code)


@entrypoint(executor=EXECUTOR)
def sync_job(seconds):
    futures = [spin(seconds), nap(seconds), timed_spin(seconds)]
    return [f.result() for f in futures]


@entrypoint(executor=EXECUTOR)
async def async_job(seconds):
    return await asyncio.gather(*(async_nap(seconds) for _ in range(6)))


@entrypoint(executor=EXECUTOR)
def buffers_job(seconds):
    import numpy as np

    arrays = [np.full(1 << 19, float(i)) for i in range(3)]  # 4 MiB each: out of band
    return [f.result() for f in [hold(a, seconds) for a in arrays]]


@entrypoint(executor=EXECUTOR)
def crashing_job(seconds):
    keep = spin(seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            crash(3).result()
        except WorkerCrashedError:
            pass
    return keep.result()


EXECUTOR.start()
if mode == "forked":
    holder = os.fork()
    if holder == 0:  # inherits every fd of the parent, the workers' pipe ends among them
        time.sleep(60)
        os._exit(0)
    print("holder", holder, flush=True)
print("ready", flush=True)
if mode in ("sync", "forked"):
    sync_job.invoke(120)
elif mode == "async":
    asyncio.run(async_job.ainvoke(120))
elif mode == "buffers":
    buffers_job.invoke(120)
else:
    crashing_job.invoke(120)
