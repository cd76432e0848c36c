"""A module that starts its pool at import, as a test module or a script might at its
top, and that workers import for its task and initializer (tests/executors/test_worker_hygiene.py).
In a worker that start must be a no-op, not an error that hides why the task failed."""

import os

from paralleltask import ProcessExecutor, task

ProcessExecutor().start()


@task
def where(x):
    return x, os.getpid()


def initializer(path):
    with open(os.path.join(path, f"{os.getpid()}.init"), "w") as f:
        f.write("ran")
