"""Per-cgroup views and a runbook's default target on real BPF (issue #17): two cgroups
named like systemd units are made under the unified hierarchy, the same program (`cgvwork`,
a copy of sleep) runs in each; the shipped `syscalls` runbook shows both units by name in
its by-cgroup view, and a runbook whose `unit` param is its target sees only that unit and
names it in a finding (cgroup_name()). The cgroups are removed afterwards, also when a
test fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cgroups import cgroup_tree, sleeper
from helpers.paths import REPO

pytestmark = pytest.mark.bpf

TARGETED = """\
apiVersion: bpfrun/v1
name: cgview
title: nanosleeps of one unit
params:
  unit: {{type: unit, default: {unit}, description: the unit to watch}}
steps:
  - id: sleeps
    title: nanosleeps by cgroup
    duration: 1s
    probes:
      - probe: tracepoint:syscalls:sys_enter_clock_nanosleep
        where: comm == "cgvwork"
        aggregate:
          - {{id: by_cgroup, count: true, by: [cgroup]}}
    thresholds:
      - id: sleeper
        when: by_cgroup.top[0].value > 0
        severity: info
        message: "${{{{ cgroup_name(by_cgroup.top[0].cgroup) }}}} sleeps"
"""


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """{unit name: cgroup id} of two units, each running cgvwork in a loop."""
    tag = uuid.uuid4().hex[:6]
    paths = [f"system.slice/bpfrun-va{tag}.service", f"system.slice/bpfrun-vb{tag}.service"]
    work = sleeper(tmp_path_factory.mktemp("cgv"), "cgvwork")
    with cgroup_tree(paths, paths, work) as ids:  # system.slice is made if missing (hybrid)
        yield {Path(rel).name: cid for rel, cid in ids.items()}


def run(tmp_path: Path, runbook: str, *args: str) -> tuple[dict, str]:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bpfrun", "run", runbook, "-q", "-o",
                           str(out), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 1: findings
    return json.loads((out / "result.json").read_text()), (out / "report.md").read_text()


def test_syscalls_shows_the_two_units_by_name(units: dict[str, int], tmp_path: Path) -> None:
    doc, report = run(tmp_path, "runbooks/syscalls.yaml", "-p", "comm=cgvwork",
                      "-p", "duration=1s")
    rows = doc["steps"][0]["aggregations"]["by_cgroup"]["rows"]
    assert {r["key"]["cgroup"] for r in rows} >= set(units.values())  # raw ids kept
    for name, cid in units.items():
        assert doc["host"]["cgroups"][str(cid)] == f"unit {name}"
        assert f"| unit {name} |" in report


def test_a_runbooks_unit_param_is_its_target(units: dict[str, int], tmp_path: Path) -> None:
    first, second = units
    rb = tmp_path / "cgview.yaml"
    rb.write_text(textwrap.dedent(TARGETED.format(unit=first)))

    def seen(*args: str) -> set[int]:
        doc, _ = run(tmp_path, str(rb), *args)
        return {r["key"]["cgroup"] for r in doc["steps"][0]["aggregations"]["by_cgroup"]["rows"]}

    assert seen() == {units[first]}
    doc, _ = run(tmp_path, str(rb))
    assert [f["message"] for f in doc["findings"]] == [f"unit {first} sleeps"]
    assert seen("-p", f"unit={second}") == {units[second]}
    assert seen("--unit", second) == {units[second]}  # the option wins over the param


def test_a_missing_default_target_exits_2_naming_it(tmp_path: Path) -> None:
    rb = tmp_path / "cgview.yaml"
    rb.write_text(textwrap.dedent(TARGETED.format(unit="no-such-bpfrun.service")))
    proc = subprocess.run([sys.executable, "-m", "bpfrun", "run", str(rb), "-q", "-o",
                           str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "no-such-bpfrun.service" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
