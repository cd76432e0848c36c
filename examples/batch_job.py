"""A CPU-bound batch job: parse, validate and fingerprint a day of order records.

Each chunk of raw CSV lines is one task: it parses every record, checks it, sums the
amounts per customer and country, and computes a content fingerprint (an iterated
SHA-256 over the normalized records). The entrypoint fans the chunks out to the
default process pool and merges the partial results. Pure Python, so threads would
run it at 1x; the pool uses every core.

One LMDB folder holds the chunk cache and the run's checkpoints: run it twice and
the second run answers every chunk from the cache; kill it (Ctrl-C, kill -9) and the
next run resumes, replaying the chunks that had finished.

    python examples/batch_job.py                 # 400 000 records in 64 chunks
    python examples/batch_job.py --records 50000 --compare-serial
    python examples/batch_job.py --no-cache --die-after 20   # killed (SIGKILL) mid-run
    python examples/batch_job.py --no-cache                  # resumes: 20 replayed
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import time
from collections import Counter

from paralleltask import CachePolicy, LMDBStore, ProcessExecutor, entrypoint, task

COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "PL", "SE", "US", "BR", "JP"]


def make_records(count: int, seed: int = 7) -> list[str]:
    """Deterministic raw CSV lines: id,customer,country,amount,timestamp (some invalid)."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        amount = f"{rng.uniform(-5, 500):.2f}" if rng.random() > 0.01 else "n/a"
        country = rng.choice(COUNTRIES) if rng.random() > 0.005 else "??"
        lines.append(f"{i},cust{rng.randrange(5000):05d},{country},{amount},{1_700_000_000 + i}")
    return lines


def summarize(lines: list[str]) -> dict:
    """Parse and check one chunk; the partial result the entrypoint merges."""
    per_customer: Counter = Counter()
    per_country: Counter = Counter()
    rejected = 0
    digest = hashlib.sha256()
    for line in lines:
        fields = line.split(",")
        if len(fields) != 5 or fields[2] not in COUNTRIES:
            rejected += 1
            continue
        try:
            cents = round(float(fields[3]) * 100)
        except ValueError:
            rejected += 1
            continue
        if cents < 0:
            rejected += 1
            continue
        per_customer[fields[1]] += cents
        per_country[fields[2]] += cents
        normalized = f"{int(fields[0]):09d}|{fields[1]}|{fields[2]}|{cents}".encode()
        for _ in range(20):  # a deliberately costly fingerprint: key stretching per record
            normalized = hashlib.sha256(normalized).digest()
        digest.update(normalized)
    return {
        "customers": per_customer,
        "countries": per_country,
        "rejected": rejected,
        "fingerprint": digest.hexdigest(),
    }


summarize_chunk = task(summarize, cache_policy=CachePolicy())


def merge(parts: list[dict]) -> dict:
    customers: Counter = Counter()
    countries: Counter = Counter()
    fingerprint = hashlib.sha256()
    for part in parts:
        customers.update(part["customers"])
        countries.update(part["countries"])
        fingerprint.update(part["fingerprint"].encode())
    return {
        "records_rejected": sum(part["rejected"] for part in parts),
        "customers": len(customers),
        "top_customer": customers.most_common(1)[0],
        "revenue_by_country": {c: countries[c] / 100 for c in sorted(countries)},
        "fingerprint": fingerprint.hexdigest()[:16],
    }


def split(lines: list[str], count: int) -> list[list[str]]:
    size = -(-len(lines) // count)
    return [lines[i : i + size] for i in range(0, len(lines), size)]


def write_input(path: str, count: int) -> None:
    """The day's order file (made once: the job's input, as a real batch job's)."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(make_records(count)))
        os.replace(path + ".tmp", path)


def read_input(path: str) -> list[str]:
    with open(path) as f:
        return f.read().split("\n")


def nightly_report(job: dict) -> dict:
    """The entrypoint's body: a small input (which file, how many chunks), so that
    checkpoints stay small; the file is read here and its chunks fan out to the pool."""
    chunks = split(read_input(job["path"]), job["chunks"])
    futures = [summarize_chunk(chunk) for chunk in chunks]
    return merge([f.result() for f in futures])


DEFAULT_STORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_out", "store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--compare-serial", action="store_true")
    parser.add_argument("--store", default=DEFAULT_STORE, help="LMDB folder: cache, checkpoints")
    parser.add_argument("--no-cache", action="store_true", help="checkpoints only")
    parser.add_argument(
        "--die-after", type=int, default=0, metavar="N", help="SIGKILL itself after N chunks"
    )
    args = parser.parse_args()
    if args.records <= 0 or args.chunks <= 0 or args.die_after < 0:
        parser.error("--records and --chunks must be positive, --die-after not negative")

    started = time.perf_counter()
    ProcessExecutor().start()
    pool_start = time.perf_counter() - started
    store = LMDBStore(args.store)
    job = entrypoint(checkpointer=store, cache=None if args.no_cache else store)(nightly_report)
    config = {"configurable": {"thread_id": f"nightly-{args.records}x{args.chunks}"}}
    resuming = bool(job.get_state(config).next)  # an earlier run of this job died
    orders = os.path.join(os.path.dirname(args.store), f"orders-{args.records}.csv")
    write_input(orders, args.records)
    given = None if resuming else {"path": orders, "chunks": args.chunks}

    started = time.perf_counter()
    computed = cached = 0
    for mode, chunk in job.stream(given, config, stream_mode=["updates", "values"]):
        if mode == "updates" and "summarize" in chunk:
            cached += "__metadata__" in chunk
            computed += "__metadata__" not in chunk
            if args.die_after and computed == args.die_after:
                print(f"{computed} chunks computed: killing this process (SIGKILL)", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "values":
            report = chunk
    parallel = time.perf_counter() - started

    workers = ProcessExecutor().max_workers
    total = -(-args.records // -(-args.records // args.chunks))
    print(f"records: {args.records}  chunks: {total}  workers: {workers}")
    for key, value in report.items():
        print(f"  {key}: {value}")
    replayed = total - computed - cached
    how = "resumed a killed run" if resuming else "a fresh run"
    print(f"{how}: {computed} chunks computed, {cached} from the cache, {replayed} replayed")
    print(f"pool start {pool_start:.2f}s, job {parallel:.2f}s on the process pool ({args.store})")
    if args.compare_serial:
        started = time.perf_counter()
        chunks = split(read_input(orders), args.chunks)
        serial_report = merge([summarize(chunk) for chunk in chunks])
        serial = time.perf_counter() - started
        assert serial_report == report, "parallel and serial results differ"
        print(f"serial {serial:.2f}s: the job ran {serial / parallel:.2f}x faster, same result")


if __name__ == "__main__":
    main()
