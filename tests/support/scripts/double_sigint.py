# An async entrypoint running sync and async tasks; the test sends SIGINT twice, a few
# ms apart, to the process group: the script must exit (promptly, every time) and leave
# no worker behind. The second Ctrl-C tends to land in the interpreter's exit path
# (the atexit pool shutdown), where it must not leave a worker to be waited on forever.
# argv: <folder for pid files>
import asyncio
import os
import sys
import time

from paralleltask import ProcessExecutor, entrypoint, task

folder = sys.argv[1]


def mark():
    path = os.path.join(folder, f"{os.getpid()}.pid")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("running")


@task
def spin(seconds):
    mark()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return seconds


@task
async def nap(seconds):
    mark()
    await asyncio.sleep(seconds)
    return seconds


@entrypoint()
async def job(n):
    calls = [spin(0.05) if i % 2 else nap(0.05) for i in range(n)]
    return await asyncio.gather(*calls)


async def main():
    await job.ainvoke(4)  # every worker has run a call: the loop below keeps them busy
    print("ready", flush=True)
    while True:
        await job.ainvoke(8)


ProcessExecutor().start()
asyncio.run(main())
