# A module that takes IMPORT_SECONDS to import, as one importing a heavy library does,
# with a quick task under a shorter timeout. tests/faults/test_faults.py imports it inside a
# test (as tests.support.scripts.slow_import_tasks), never at its own import time, so that only
# the workers that run ``quick`` pay for it.
import time

from paralleltask import RetryPolicy, task

IMPORT_SECONDS = 1.0
TIMEOUT = 0.5

time.sleep(IMPORT_SECONDS)


@task(
    timeout=TIMEOUT,
    retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False),
)
def quick(x):
    return x + 1
