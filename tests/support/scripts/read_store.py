# Reads everything an LMDBStore holds (tests/faults/test_store_integrity.py), so that a damaged
# data file shows how the store takes it: the process must end with a StoreError or
# misses, never a signal or an error of struct's, pickle's or lmdb's.
# argv: <store> <number of cache keys> <thread id>
# Prints "hits N misses M checkpoints C" or "StoreError: ..." (exit status 3).
import sys

from paralleltask import LMDBStore
from paralleltask.errors import StoreError
from paralleltask.stores import MISS

path, count, thread = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    store = LMDBStore(path)
    values = [store.cache_get(i.to_bytes(32, "big")) for i in range(count)]
    hits = sum(value is not MISS for value in values)
    checkpoints = len(list(store.checkpoint_history(thread)))
except StoreError as exc:
    print(f"StoreError: {exc}", flush=True)
    sys.exit(3)
print(f"hits {hits} misses {count - hits} checkpoints {checkpoints}", flush=True)
