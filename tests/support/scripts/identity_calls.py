# Times the per-call hot path of the process pool: 5 000 identity calls in one invoke,
# seven rounds, the median and the best printed (µs per call). Used to compare before
# and after a change to the pool or the worker (the machine is shared: compare medians).
# argv: [calls] [rounds]
import statistics
import sys
import time

from paralleltask import ProcessExecutor, entrypoint, task

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 7


@task
def identity(x):
    return x


@entrypoint()
def many(n):
    return sum(f.result() for f in [identity(i) for i in range(n)])


if __name__ == "__main__":
    ProcessExecutor().start()
    many.invoke(CALLS)  # warm: the workers import this module and learn the depth
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        assert many.invoke(CALLS) == CALLS * (CALLS - 1) // 2
        times.append((time.perf_counter() - started) / CALLS * 1e6)
    print(
        f"{CALLS} identity calls: median {statistics.median(times):.2f} µs/call, "
        f"best {min(times):.2f} µs/call"
    )
