"""A checkpointed job that tests/checkpoints runs in the session and in fresh interpreters
(a run fails in one process, another resumes it from the LMDB file): both import it here."""

from __future__ import annotations

import os

from paralleltask import entrypoint, task


def record(folder, name):
    open(os.path.join(folder, f"{name}-{os.urandom(6).hex()}"), "w").close()


def executions(folder, name):
    return sum(1 for f in os.listdir(folder) if f.startswith(f"{name}-"))


@task
def square_or_fail(folder, x, fail_at):
    record(folder, x)
    if x == fail_at and not os.path.exists(os.path.join(folder, "healed")):
        raise ValueError(f"failing at {x}")
    return x * x


def squares_job(store):
    @entrypoint(checkpointer=store)
    def squares(job):
        folder, xs, fail_at = job
        return [f.result() for f in [square_or_fail(folder, x, fail_at) for x in xs]]

    return squares
