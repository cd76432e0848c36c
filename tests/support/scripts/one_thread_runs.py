# Many runs on one thread_id of one LMDBStore, for tests/checkpoints/test_durability.py:
# two of these processes at once must keep every checkpoint of both (seqs are taken in
# the commit).
# argv: <store> <thread_id> <tag> <runs>. Prints {"ok": runs} once every run returned
# its right value.
import json
import sys

from paralleltask import InlineExecutor, LMDBStore, entrypoint, task

store_path, thread_id, tag, runs = sys.argv[1:5]


@task
def double(x):
    return 2 * x


@entrypoint(checkpointer=LMDBStore(store_path), executor=InlineExecutor())
def main(x):
    return [tag, double(x[1]).result()]


config = {"configurable": {"thread_id": thread_id}}
for i in range(int(runs)):
    value = main.invoke([tag, i], config, durability="async")
    assert value == [tag, 2 * i], value
print(json.dumps({"ok": int(runs)}))
