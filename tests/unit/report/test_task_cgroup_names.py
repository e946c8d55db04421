"""A task_cgroup(...) key (the waiting task's cgroup, issue #17) is named like a `cgroup` key:
the run takes names for its ids, the report shows them, result.json keeps the ids; its 0
(a thread not yet seen leaving a CPU) is no cgroup and stays 0."""

from __future__ import annotations

from bpfrun.compile.program import AggPlan, KeyField, Program
from bpfrun.report.markdown import render_markdown
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    Host,
    RunbookInfo,
    RunResult,
    StepResult,
)
from bpfrun.runtime.cgroupnames import cgroup_ids, keys_cgroups

VICTIM = "task_cgroup(args.next_pid)"
NAMES = {"8": "unit checkout.service", "9": "unit batch.service"}


def step() -> StepResult:
    agg = AggregationResult("sum", (VICTIM, "cgroup"), "us", None, 2, (
        AggregationRow({VICTIM: 8, "cgroup": 9}, 32000),
        AggregationRow({VICTIM: 0, "cgroup": 9}, 5)))
    return StepResult("runq", "R", None, "ran", seconds=3.0,
                      aggregations={"slow_by_cgroups": agg})


def test_the_run_names_task_cgroup_ids_but_not_0() -> None:
    assert cgroup_ids([step()]) == {8, 9}
    plan = AggPlan("a", "sum", "m", None, [KeyField("k0", VICTIM, "int", "int")], "int", None,
                   1, None, None)
    assert keys_cgroups(Program("runq", aggs=[plan]))
    plan.keys[0].expr = "args.next_pid"
    assert not keys_cgroups(Program("runq", aggs=[plan]))


def test_the_report_shows_both_names_and_result_json_the_ids() -> None:
    run = RunResult(RunbookInfo("t", "t.yaml", "T", ""), Host("h", "6.18", None, NAMES),
                    "0.1.0", "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z", {}, "clean", 0,
                    steps=(step(),))
    text = render_markdown(run)
    assert "| unit checkout.service | unit batch.service |" in text
    assert "| 0 | unit batch.service |" in text
    row = run.to_json()["steps"][0]["aggregations"]["slow_by_cgroups"]["rows"][0]
    assert row["key"] == {VICTIM: 8, "cgroup": 9}
