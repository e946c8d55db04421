"""The overhead budget on real BPF (issue #18.3): `syscalls` against a tight syscall loop with a
small budget stops within about a second, exits 1 with a warning finding that says why, keeps
what it had collected, and the loop's speed comes back once the probes are gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers.paths import REPO
from helpers.workloads import Workload, run

pytestmark = pytest.mark.bpf


def loop_rate(seconds: float = 1.0) -> float:
    return float(run("syscall_loop", "--seconds", seconds)["rate"])


def test_a_step_over_budget_stops_early_with_a_warning_and_the_load_recovers() -> None:
    before = loop_rate()
    with Workload("syscall_loop", "--seconds", "60"):
        started = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "bpfrun", "run", "syscalls", "--duration",
                            "10s", "--max-overhead", "1", "-q", "--json"], cwd=REPO,
                           text=True, capture_output=True, timeout=120)
        took = time.monotonic() - started
    after = loop_rate()
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    step = doc["steps"][0]
    assert step["id"] == "syscalls" and step["status"] == "ran"
    assert step["seconds"] < 2.5  # stopped after its first second, not its 10 s
    cost = step["overhead"]
    assert cost["stopped"] and cost["budget_percent"] == 1
    assert cost["cpu_percent"] > 1 and cost["events"] > 100_000 and cost["bpf_ns"] > 0
    assert step["aggregations"]["by_process"]["rows"], "what it collected is kept"
    budget = [f for f in doc["findings"]
              if f["step"] == "syscalls" and f["threshold"] == "overhead_budget"]
    assert len(budget) == 1 and budget[0]["severity"] == "warning"
    assert "over the 1 % budget" in budget[0]["message"]
    assert "pid or comm" in budget[0]["message"]
    assert took < 30  # both steps stopped early
    # Loosely: traced, the loop ran ~4x slower; on a shared CI machine an untraced second
    # has measured at 0.47 of the one before, so recovered means clearly above a quarter.
    assert after > 0.3 * before, (before, after)


def test_without_a_limit_the_step_runs_its_duration_and_states_its_cost() -> None:
    with Workload("syscall_loop", "--seconds", "60"):
        r = subprocess.run([sys.executable, "-m", "bpfrun", "run", "syscalls", "--duration",
                            "2s", "--max-overhead", "0", "-q", "--json"], cwd=REPO,
                           text=True, capture_output=True, timeout=120)
    doc = json.loads(r.stdout)
    step = doc["steps"][0]
    assert step["seconds"] >= 1.9
    assert step["overhead"]["budget_percent"] is None and not step["overhead"]["stopped"]
    assert step["overhead"]["cpu_percent"] > 0
    assert not [f for f in doc["findings"] if f["threshold"] == "overhead_budget"]
