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


class Switch:
    """Stands in for BPF_ENABLE_STATS: records when the statistics are on."""

    def __init__(self, available: bool = True) -> None:
        self.available, self.is_on, self.turned_on = available, False, 0

    def on(self) -> bool:
        if self.available and not self.is_on:
            self.is_on, self.turned_on = True, self.turned_on + 1
        return self.available

    def off(self) -> None:
        self.is_on = False


def test_a_window_over_budget_stops_the_step(clock: Clock) -> None:
    switch = Switch()
    meter = OverheadMeter([3], budget=5.0, cpus=2, switch=switch)  # type: ignore[arg-type]
    assert meter.start() and switch.is_on
    clock.now, clock.ns, clock.runs = 100.05, 10**8, 10
    assert not meter.check() and clock.reads == 1  # the window is still open: nothing read
    clock.now, clock.ns = 100.125, 125_000_000
    assert not meter.check() and not switch.is_on  # 0.125 s of BPF on 2 CPUs: 50 %, once
    clock.now = 101.0
    assert not meter.check() and switch.is_on  # the next second's window
    clock.now, clock.ns = 101.125, 250_000_000
    assert meter.check()  # the second window in a row over budget stops the step
    assert meter.over is not None and meter.over.cpu_percent == pytest.approx(50.0)


def test_one_window_over_budget_between_quiet_ones_does_not_stop(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=5.0, cpus=2, switch=Switch())  # type: ignore[arg-type]
    meter.start()
    for second, ns in enumerate((125_000_000, 0, 125_000_000, 0)):  # a burst, then quiet
        clock.now = 100.0 + second
        meter.check()
        clock.now, clock.ns = 100.0 + second + 0.125, clock.ns + ns
        assert not meter.check()
    assert meter.over is None


def test_statistics_are_on_a_tenth_of_the_time_and_the_total_is_scaled(clock: Clock) -> None:
    # Timing every program run costs every program on the host two clock reads a run: the
    # kernel times a window of each second, and the step's total is scaled from the windows.
    switch = Switch()
    meter = OverheadMeter([3], budget=5.0, cpus=2, switch=switch)  # type: ignore[arg-type]
    meter.start()
    for second in range(3):
        clock.now = 100.0 + second + 0.125
        clock.ns += 1_250_000  # 1.25 ms of BPF in each 0.125 s window on 2 CPUs: 0.5 %
        clock.runs += 100
        assert not meter.check() and not switch.is_on
        clock.now = 100.0 + second + 0.5
        assert not meter.check() and not switch.is_on  # off between windows
        clock.now = 100.0 + second + 1.0
        meter.check()
        assert switch.is_on  # the next second's window
    clock.now = 103.0
    total = meter.total()
    assert total.cpu_percent == pytest.approx(0.5, rel=0.01) and meter.over is None
    assert total.events == pytest.approx(2400, rel=0.01)  # 300 timed runs, an eighth timed
    assert total.timed == pytest.approx(0.375) and switch.turned_on == 4
    meter.close()
    assert not switch.is_on


def test_without_a_budget_the_meter_only_measures(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=None, cpus=1, switch=Switch())  # type: ignore[arg-type]
    meter.start()
    clock.now, clock.ns = 100.125, 125_000_000
    assert not meter.check()
    assert meter.total().cpu_percent == pytest.approx(100.0)


def test_without_statistics_nothing_is_measured(clock: Clock) -> None:
    meter = OverheadMeter([3], budget=5.0, switch=Switch(available=False))  # type: ignore[arg-type]
    assert not meter.start()


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


def test_an_estimate_from_timed_windows_says_so() -> None:
    result = stopped_result()
    step = replace(result.steps[0], overhead=Overhead(120_000_000, 900_000, 6.0, 5.0, True,
                                                      timed_percent=10.0))
    sampled = replace(result, steps=(step, *result.steps[1:]))
    doc = sampled.to_json()
    assert doc["steps"][0]["overhead"]["timed_percent"] == 10.0
    assert validate_result(doc) == [] and RunResult.from_json(doc) == sampled
    assert ("(120.0 ms over 900,000 probe hits; estimated from the 10 % of the time the kernel "
            "timed them; budget 5 %)") in render_markdown(sampled)


def test_a_policy_sets_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nmax_overhead: 2.5\n")
    policy = load_policy(path)
    assert policy.max_overhead == 2.5
    assert run_budget(None, policy.max_overhead, policy.rule("max_overhead")) == 2.5
    path.write_text("max_overhead: 101\n")
    with pytest.raises(ValidationError):
        load_policy(path)
