# Timings for issue 13's durability work (not a test): one invoke with an LMDB
# checkpointer (W5i with a checkpointer), 2 000 identity calls in one invoke under
# durability="async" (W2 with a checkpointer), and a warm LMDB cache hit (W6's path).
# argv: [rounds]. Prints medians in µs.
import statistics
import sys
import tempfile
import time

from paralleltask import LMDBStore, ProcessExecutor, entrypoint, task
from paralleltask.types import CachePolicy


@task
def identity(x):
    return x


@task(cache_policy=CachePolicy())
def cached(x):
    return x


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    executor = ProcessExecutor(max_workers=2).start()
    store = LMDBStore(tempfile.mkdtemp(prefix="timing-"))

    @entrypoint(checkpointer=store, executor=executor)
    def one(x):
        return identity(x).result()

    @entrypoint(checkpointer=store, executor=executor)
    def many(n):
        return len([f.result() for f in [identity(i) for i in range(n)]])

    @entrypoint(cache=store, executor=executor)
    def hits(n):
        return sum(cached(i % 10).result() for i in range(n))

    hits.invoke(10)
    invoke_us, call_us, hit_us = [], [], []
    for r in range(rounds):
        t = time.perf_counter()
        for i in range(200):
            one.invoke(i, {"configurable": {"thread_id": f"w5i-{r}"}}, durability="async")
        invoke_us.append((time.perf_counter() - t) / 200 * 1e6)
        t = time.perf_counter()
        many.invoke(2000, {"configurable": {"thread_id": f"w2-{r}"}}, durability="async")
        call_us.append((time.perf_counter() - t) / 2000 * 1e6)
        t = time.perf_counter()
        hits.invoke(20000)
        hit_us.append((time.perf_counter() - t) / 20000 * 1e6)
    print(
        f"invoke with LMDB checkpointer: {statistics.median(invoke_us):.0f} us; "
        f"2000 calls async: {statistics.median(call_us):.1f} us/call; "
        f"cache hit: {statistics.median(hit_us):.2f} us"
    )


if __name__ == "__main__":
    main()
