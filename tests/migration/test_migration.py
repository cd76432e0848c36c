"""Half-migrated programs: LangGraph's objects and functions inside paralleltask runs."""

from __future__ import annotations

import os

import pytest

from paralleltask import entrypoint, task

lg_config = pytest.importorskip("langgraph.config")
lg_types = pytest.importorskip("langgraph.types")
lg_func = pytest.importorskip("langgraph.func")
lg_runtime = pytest.importorskip("langgraph.runtime")


@task
def uses_langgraphs_getters(x):
    # A task module still importing LangGraph's functions, running in a worker.
    lg_config.get_stream_writer()({"from": os.getpid()})
    context = lg_runtime.get_runtime().context
    return lg_config.get_config()["configurable"]["user"], context, x


@task
def uses_langgraphs_interrupt(x):
    return lg_types.interrupt("approve?")


@lg_func.task
def a_langgraph_task(x):
    return x


def test_langgraphs_getters_work_in_a_worker():
    @entrypoint()
    def main(x):
        return uses_langgraphs_getters(x).result()

    chunks = list(
        main.stream(
            1, {"configurable": {"user": "ada"}}, context="ctx", stream_mode=["custom", "values"]
        )
    )
    assert chunks[0][0] == "custom" and chunks[0][1]["from"] != os.getpid()
    assert chunks[-1] == ("values", ("ada", "ctx", 1))


def test_langgraphs_getters_work_in_the_body():
    @entrypoint()
    def main(x):
        lg_config.get_stream_writer()("body")
        return lg_config.get_config()["configurable"]["user"]

    config = {"configurable": {"user": "bo"}}
    assert main.invoke(1, config) == "bo"
    assert list(main.stream(1, config, stream_mode="custom")) == ["body"]


def test_langgraphs_interrupt_names_the_import_to_change():
    @entrypoint()
    def main(x):
        return uses_langgraphs_interrupt(x).result()

    with pytest.raises(RuntimeError, match=r"interrupt.*paralleltask"):
        main.invoke(1)


def test_a_langgraph_task_in_a_paralleltask_body_names_the_import_to_change():
    @entrypoint()
    def main(x):
        return a_langgraph_task(x).result()

    with pytest.raises(RuntimeError, match=r"task.*Import it from paralleltask"):
        main.invoke(1)


def test_langgraphs_retry_policy_is_accepted(tmp_path):
    @task(retry_policy=lg_types.RetryPolicy(initial_interval=0.01, jitter=False, retry_on=KeyError))
    def flaky(folder):
        open(os.path.join(folder, str(len(os.listdir(folder)))), "w").close()
        if len(os.listdir(folder)) < 2:
            raise KeyError("once")
        return "ok"

    @entrypoint(retry_policy=[lg_types.RetryPolicy(max_attempts=1)])
    def main(folder):
        return flaky(folder).result()

    assert main.invoke(str(tmp_path)) == "ok"
    assert len(os.listdir(tmp_path)) == 2


def test_a_langgraph_entrypoint_still_runs_inside_a_paralleltask_body():
    @lg_func.entrypoint()
    def langgraph_main(x):
        return a_langgraph_task(x).result() + 1

    @entrypoint()
    def main(x):
        return langgraph_main.invoke(x)

    assert main.invoke(1) == 2
