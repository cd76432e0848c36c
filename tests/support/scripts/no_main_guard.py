# A script as users write them: tasks in __main__, a closure and a lambda, and no
# ``if __name__ == "__main__":`` guard. Workers must not re-run this file.
import os

from paralleltask import entrypoint, task

print("module body ran in", os.getpid(), flush=True)

SCALE = 3


@task
def scaled(x):
    return x * SCALE


def make_adder(n):
    return task(lambda x: x + n)


add_five = make_adder(5)


@entrypoint()
def main(xs):
    scaled_values = [f.result() for f in [scaled(x) for x in xs]]
    return [f.result() for f in [add_five(v) for v in scaled_values]]


print("result", main.invoke([1, 2, 3]), flush=True)
