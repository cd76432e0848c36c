# The interpreter's exit path, interrupted: a KeyboardInterrupt raised inside the atexit
# pool shutdown before it stops any worker, as a second Ctrl-C a few ms after the first
# can do. The process must still exit at once and leave no worker (multiprocessing's
# own exit hook, run after ours, joins the children it knows without a timeout).
# Prints "workers <pid> <pid>", then ends its main module.
import os

from paralleltask import ProcessExecutor, entrypoint, task
from paralleltask.executors import _pool


@task
def where(_):
    return os.getpid()


@entrypoint()
def job(n):
    return sorted({f.result() for f in [where(i) for i in range(n)]})


executor = ProcessExecutor().start()
job.invoke(4)
pool = executor._pool()
print("workers", *sorted(w.process.pid for w in pool._workers), flush=True)


def interrupted(self, wait=True):
    raise KeyboardInterrupt  # the second Ctrl-C, before any worker is stopped


_pool.WorkerPool.shutdown = interrupted
