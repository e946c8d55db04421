"""Regression gates: names checked at validation, judged on a run and its baseline like
thresholds, and the baseline section of result.json and of the report."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.diff import load_run
from bpfrun.diff.baseline import baseline_section, with_baseline
from bpfrun.diff.regressions import judge_regressions
from bpfrun.diff.validate import validate_diff
from bpfrun.errors import EXIT_FIRED, ValidationError
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.report.writers import write_outputs
from bpfrun.result import RunResult, validate_result
from bpfrun.units import Duration

RESULTS = FIXTURES / "results"
RUNBOOK = """\
apiVersion: bpfrun/v1
name: runq-latency
title: T
params:
  threshold: {type: duration, default: 1ms}
steps:
  - id: runq
    span:
      begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid}
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - {id: dist, hist: duration, unit: us}
        - {id: slow_by, count: true, by: [args.next_comm, args.prev_comm]}
    thresholds:
      - {id: slow, when: dist.p99 > params.threshold}
    capture:
      culprit: slow_by.top[0].args.prev_comm
regressions:
"""


def runbook(tmp_path: Path, gates: str) -> Runbook:
    path = tmp_path / "r.yaml"
    path.write_text(RUNBOOK + textwrap.indent(textwrap.dedent(gates), "  "))
    return load_runbook(path)


def problems(tmp_path: Path, gates: str) -> list[str]:
    with pytest.raises(ValidationError) as e:
        runbook(tmp_path, gates)
    return [f"{d.loc.line}:{d.loc.col}: {d.message}" if d.loc else d.message
            for d in e.value.diagnostics]


@pytest.fixture()
def fired() -> RunResult:
    return load_run(RESULTS / "runq_fired.json")


@pytest.fixture()
def split() -> RunResult:
    return load_run(RESULTS / "runq_split_clean.json")


GROWN = """\
- id: p99_grew
  when: runq.dist.p99 > baseline.runq.dist.p99 * 3 / 2
  severity: critical
  message: "p99 ${{ baseline.runq.dist.p99 }} → ${{ runq.dist.p99 }}"
- {id: newly_slow, when: runq.slow && !baseline.runq.slow}
- {id: hog, when: "runq.culprit == \\"hog_thread\\" && runq.dist.count > params.threshold / 1ms"}
"""


def test_unknown_names_in_gates_are_errors_at_validation(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        - {id: a, when: runq.dsit.p99 > baseline.runq.dist.p98}
        - {id: a, when: nope.x > 1 || params.thresold > 1ms}
        """)
    assert found == [
        "19:19: step 'runq' has no threshold, capture or aggregation 'dsit'",
        "19:35: 'runq.dist' has no field 'p98'",
        "20:5: regression id 'a' is used twice",
        "20:19: unknown name 'nope.x' in a regression gate",
        "20:33: unknown param 'thresold'"]


def test_gates_are_judged_on_the_run_against_its_baseline(
        tmp_path: Path, fired: RunResult, split: RunResult) -> None:
    gates = runbook(tmp_path, GROWN).regressions
    # Before the fix is the baseline, the run after it: nothing regressed.
    better = judge_regressions(gates, fired, split, {"threshold": Duration(1_000_000)})
    assert {k: r.fired for k, r in better.items()} == {
        "p99_grew": False, "newly_slow": False, "hog": False}
    # The other way round: p99 grew 128-fold, the threshold fires anew, the hog is back.
    worse = judge_regressions(gates, split, fired, {"threshold": Duration(1_000_000)})
    assert {k: r.fired for k, r in worse.items()} == {
        "p99_grew": True, "newly_slow": True, "hog": True}
    assert worse["p99_grew"].message == "p99 64us → 8.19ms"
    assert worse["p99_grew"].severity == "critical"


def test_a_baseline_goes_into_result_json_and_fired_gates_are_findings(
        tmp_path: Path, fired: RunResult, split: RunResult) -> None:
    rb = runbook(tmp_path, GROWN)
    run, diff = with_baseline(fired, split, rb, {"threshold": Duration(1_000_000)}, "old")
    assert run.exit_code == EXIT_FIRED
    assert [(f.step, f.threshold) for f in run.findings] == [
        ("runq", "slow"), ("regressions", "p99_grew"), ("regressions", "newly_slow"),
        ("regressions", "hog")]
    doc = run.to_json()
    assert list(doc)[-2:] == ["baseline", "version"]
    assert doc["baseline"]["before"]["source"] == "old"
    assert doc["baseline"]["regressions"]["p99_grew"]["fired"] is True
    assert validate_result(doc) == [] and validate_diff(doc["baseline"]) == []
    assert RunResult.from_json(doc) == run
    written = write_outputs(tmp_path / "out", run, {}, {}, appendix=baseline_section(diff))
    text = written["md"].read_text()
    assert "## Compared with the baseline" in text and "### Regression gates" in text
    assert "regressions.p99\\_grew" in text or "regressions.p99_grew" in text


def test_a_clean_run_that_regresses_becomes_fired(tmp_path: Path, fired: RunResult,
                                                  split: RunResult) -> None:
    rb = runbook(tmp_path, "- {id: any_slow_row, when: runq.slow_by.total > 0}\n")
    run, _ = with_baseline(split, fired, rb, {}, "old")
    assert (run.status, run.exit_code) == ("fired", EXIT_FIRED)
    assert validate_result(run.to_json()) == []
