"""A `cgroup` key is shown by the name the run took on its host, the raw id stays in
result.json, and the header names the run's target (issue #17)."""

from __future__ import annotations

from bpfrun.report.markdown import render_markdown
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    EventsResult,
    Host,
    RunbookInfo,
    RunResult,
    StepResult,
    validate_result,
)

TARGET = {"kind": "pod", "asked": "shop/web-7d9f", "path": "kubepods.slice/x", "id": 7,
          "label": "pod shop/web-7d9f"}
NAMES = {"8": "pod shop/web-7d9f, container 4f1c0ffee2b0 (containerd)",
         "9": "cgroup 9 (gone)"}


def result(host: Host) -> RunResult:
    agg = AggregationResult("count", ("cgroup",), None, None, 3, (
        AggregationRow({"cgroup": 8}, 5), AggregationRow({"cgroup": 9}, 2),
        AggregationRow({"cgroup": 10}, 1)))
    events = EventsResult("tracepoint:sched:sched_switch", "e", ("cgroup",),
                          ({"cgroup": 8},), 0, 1)
    return RunResult(RunbookInfo("t", "t.yaml", "T", ""), host, "0.1.0",
                     "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z", {}, "clean", 0,
                     steps=(StepResult("s", "S", None, "ran", seconds=3.0,
                                       aggregations={"by_cgroup": agg},
                                       events=(events,)),))


def test_names_in_the_report_ids_in_result_json() -> None:
    run = result(Host("h", "6.18", TARGET, NAMES))
    text = render_markdown(run)
    assert "| Target | pod shop/web-7d9f |" in text
    assert "| pod shop/web-7d9f, container 4f1c0ffee2b0 (containerd) | 5 |" in text
    assert "| cgroup 9 (gone) | 2 |" in text
    assert "| 10 | 1 |" in text  # no name taken: the id
    doc = run.to_json()
    assert doc["steps"][0]["aggregations"]["by_cgroup"]["rows"][0]["key"] == {"cgroup": 8}
    assert doc["host"]["target"] == TARGET and doc["host"]["cgroups"] == NAMES
    assert validate_result(doc) == []
    assert RunResult.from_json(doc).host == run.host


def test_a_run_without_target_has_no_target_row() -> None:
    run = result(Host("h", "6.18"))
    assert "Target" not in render_markdown(run)
    assert "target" not in run.to_json()["host"]


def test_cgroups_beyond_the_shown_rows_are_summed_into_one_row() -> None:
    rows = tuple(AggregationRow({"cgroup": 100 + i}, 50 - i) for i in range(25))
    agg = AggregationResult("count", ("cgroup",), None, None, 25, rows)
    run = RunResult(RunbookInfo("t", "t.yaml", "T", ""), Host("h", "6.18"), "0.1.0",
                    "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z", {}, "clean", 0,
                    steps=(StepResult("s", "S", None, "ran", seconds=3.0,
                                      aggregations={"by_cgroup": agg}),))
    text = render_markdown(run)
    assert f"| 5 other cgroups | {sum(50 - i for i in range(20, 25))} |" in text
    assert "more row" not in text
    cut = AggregationResult("count", ("cgroup",), None, 22, 40, rows[:22])  # top: 22
    run = RunResult(run.runbook, run.host, "0.1.0", run.started, run.finished, {}, "clean",
                    0, steps=(StepResult("s", "S", None, "ran", seconds=3.0,
                                         aggregations={"by_cgroup": cut}),))
    assert "| 18 other cgroups | (beyond top: 22) |" in render_markdown(run)
