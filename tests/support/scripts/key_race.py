# Processes racing to create one key file (tests/faults/test_store_integrity.py).
# argv: <folder> <trials> <processes>
# Each trial: <processes> forked processes wait at one barrier, then all call load_key()
# for a key file that does not exist yet. Prints one line per trial: the distinct
# outcomes (a key's sha256 prefix, or the error), space-separated.
import hashlib
import multiprocessing
import os
import sys

from paralleltask.stores._format import load_key

folder, trials, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def create(barrier, path, answers):
    os.environ["PARALLELTASK_KEY_FILE"] = path
    os.environ.pop("PARALLELTASK_STORE_KEY", None)
    barrier.wait()
    try:
        answers.put(hashlib.sha256(load_key()).hexdigest()[:12])
    except Exception as exc:
        answers.put(f"{type(exc).__name__}:{exc}".replace(" ", "_"))


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")  # a fresh script: no threads yet
    for trial in range(trials):
        path = os.path.join(folder, f"trial-{trial}", "store.key")
        barrier, answers = context.Barrier(processes), context.Queue()
        racers = [
            context.Process(target=create, args=(barrier, path, answers)) for _ in range(processes)
        ]
        for racer in racers:
            racer.start()
        outcomes = {answers.get(timeout=30) for _ in racers}
        for racer in racers:
            racer.join()
        print(" ".join(sorted(outcomes)), flush=True)
