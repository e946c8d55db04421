"""The overhead budget (issue #18.3) without BPF: its arithmetic, the once-a-second check, the
budget a run gets from --max-overhead and the policy, and how result.json and the report
carry the measured cost and a step the budget stopped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import UsageError, ValidationError
from bpfrun.frontend.policy import load_policy
from bpfrun.report.markdown import render_markdown
from bpfrun.result import Finding, Overhead, RunResult, validate_result
from bpfrun.runtime import overhead
from bpfrun.runtime.overhead import Measured, OverheadMeter, budget_message, run_budget


def test_cost_is_bpf_time_over_elapsed_times_cpus() -> None:
    m = Measured(bpf_ns=100_000_000, events=1000, seconds=1.0, cpus=2)
    assert m.cpu_percent == pytest.approx(5.0)
    assert m.rate == 1000
    assert Measured(0, 0, 0.0, 2).cpu_percent == 0.0


class Clock:
    def __init__(self) -> None:
        self.now, self.ns, self.runs, self.reads = 100.0, 0, 0, 0

    def read(self, _fds: object) -> tuple[int, int]:
        self.reads += 1
        return self.ns, self.runs


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(overhead.time, "monotonic", lambda: c.now)
    monkeypatch.setattr(overhead, "read_programs", c.read)
    return c


def test_the_meter_reads_once_a_second_and_stops_a_step_over_budget(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=5.0, cpus=2)
    meter.start()
    clock.now, clock.ns, clock.runs = 100.5, 10**9, 10
    assert not meter.check() and clock.reads == 1  # not a second yet: nothing read
    clock.now = 101.0
    assert meter.check()  # 1 s of BPF on 2 CPUs over 1 s: 50 %
    assert meter.over is not None and meter.over.cpu_percent == pytest.approx(50.0)
    assert meter.total().events == 10


def test_a_cheap_step_is_measured_and_never_stopped(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=5.0, cpus=2)
    meter.start()
    for second in range(1, 4):
        clock.now, clock.ns = 100.0 + second, second * 10_000_000  # 0.5 % each second
        assert not meter.check()
    total = meter.total()
    assert total.cpu_percent == pytest.approx(0.5) and meter.over is None


def test_without_a_budget_the_meter_only_measures(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=None, cpus=1)
    meter.start()
    clock.now, clock.ns = 101.0, 10**9
    assert not meter.check()
    assert meter.total().cpu_percent == pytest.approx(100.0)


@pytest.mark.parametrize(("option", "policy", "budget"), [
    (None, None, 5.0),  # the default
    (2.0, None, 2.0), (0.0, None, None), (50.0, None, 50.0),
    (None, 3.0, 3.0), (1.0, 3.0, 1.0), (3.0, 3.0, 3.0),
    (None, 0.0, None),  # a policy may lift the default too
])
def test_the_budget_of_a_run(option: float | None, policy: float | None,
                             budget: float | None) -> None:
    assert run_budget(option, policy, "policy rule 'max_overhead'") == budget


@pytest.mark.parametrize("option", [0.0, 4.0])
def test_the_option_cannot_lift_the_policys_limit(option: float) -> None:
    with pytest.raises(UsageError, match="policy rule 'max_overhead' .*above its 3 %"):
        run_budget(option, 3.0, "policy rule 'max_overhead' (p.yaml:2:1)")


def test_a_budget_is_a_percentage() -> None:
    with pytest.raises(UsageError, match="--max-overhead: 150"):
        run_budget(150.0, None, "r")


def test_the_finding_says_why_what_was_kept_and_how_to_narrow() -> None:
    text = budget_message("syscalls", Measured(300_000_000, 2_000_000, 1.0, 2),
                          Measured(300_000_000, 2_000_000, 1.0, 2), 5.0, 1.0)
    assert "stopped after 1.0 s" in text and "15.0 % of the CPUs" in text
    assert "over the 5 % budget" in text and "2,000,000 hits" in text
    assert "pid or comm" in text and "sample: 1/N" in text and "--max-overhead" in text


def stopped_result() -> RunResult:
    result = RunResult.from_json(
        json.loads((FIXTURES / "results" / "files_clean.json").read_text()))
    step = result.steps[0]
    cost = Overhead(120_000_000, 900_000, 6.0, 5.0, True)
    return replace(result, status="fired", exit_code=1,
                   steps=(replace(step, overhead=cost), *result.steps[1:]),
                   findings=(Finding(step.id, "overhead_budget", "warning", "stopped"),))


def test_result_json_carries_the_overhead_and_its_finding_validates() -> None:
    result = stopped_result()
    doc = result.to_json()
    assert doc["steps"][0]["overhead"] == {"bpf_ns": 120_000_000, "events": 900_000,
                                          "cpu_percent": 6.0, "budget_percent": 5.0,
                                          "stopped": True}
    assert validate_result(doc) == []
    assert RunResult.from_json(doc) == result
    unstopped = replace(result.steps[0], overhead=Overhead(1, 1, 6.0, 5.0, False))
    problems = validate_result(replace(result, steps=(unstopped, *result.steps[1:])).to_json())
    assert problems == ["$.findings[0]: step 'writes' has no threshold 'overhead_budget' "
                        "that fired"]


def test_the_report_states_each_steps_overhead() -> None:
    md = render_markdown(stopped_result())
    assert ("**Overhead:** 6.00 % of all CPUs in BPF programs (120.0 ms over 900,000 probe "
            "hits; budget 5 %): stopped early, over budget.") in md



def test_a_policy_sets_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nmax_overhead: 2.5\n")
    policy = load_policy(path)
    assert policy.max_overhead == 2.5
    assert run_budget(None, policy.max_overhead, policy.rule("max_overhead")) == 2.5
    path.write_text("max_overhead: 101\n")
    with pytest.raises(ValidationError):
        load_policy(path)
