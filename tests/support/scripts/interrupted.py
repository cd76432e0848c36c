# Runs long pure-Python tasks; the test sends SIGINT to the process group mid-run.
# argv: <folder for pid files> <"catch" | "raise">
import os
import sys
import time

from paralleltask import ProcessExecutor, entrypoint, task

folder, mode = sys.argv[1], sys.argv[2]


@task
def spin(seconds, folder):
    with open(os.path.join(folder, f"{os.getpid()}.pid"), "w") as f:
        f.write("running")
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


@task
def square(x):
    return x * x


@entrypoint()
def long_job(n):
    return [f.result() for f in [spin(60, folder) for _ in range(n)]]


@entrypoint()
def short_job(xs):
    return [f.result() for f in [square(x) for x in xs]]


ProcessExecutor().start()
print("ready", flush=True)
if mode == "catch":
    try:
        long_job.invoke(4)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print("after", short_job.invoke([1, 2, 3]), flush=True)
else:
    long_job.invoke(4)
