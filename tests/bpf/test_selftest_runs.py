"""`bpfrun test` for real: a workload, real programs, the comparison and the cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.runbooks import OPENAT, write_runbook

from bpfrun.runtime.selftest import run_selftest


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


@pytest.mark.bpf
def test_real_run_passes_with_the_workload_pid(tmp_path: Path, repo_root: Path) -> None:
    path = write_runbook(tmp_path, {
        "workload": OPENAT, "params": {"pid": "${{ workload.pid }}"}, "timeout": "60s",
        "expect": {"fired": ["s.opened"], "captures": {"s.who": "bpfr_openat"},
                   "rows": {"s.opens": {"min": 1}}, "steps": {"s": "ran"}}})
    res = run_selftest(path, out_dir=tmp_path / "out", root=repo_root)
    assert res.mismatches == []
    assert res.ok and res.report == tmp_path / "out" / "opens-test" / "report.md"
    result = json.loads((res.report.parent / "result.json").read_text())
    assert int(result["params"]["pid"]) > 1  # the workload's pid, not the default 0
    assert 2 < res.seconds < 15


@pytest.mark.bpf
def test_real_run_failing_expectations_are_listed(tmp_path: Path, repo_root: Path) -> None:
    path = write_runbook(tmp_path, {
        "workload": OPENAT,
        "expect": {"not_fired": ["s.opened"], "captures": {"s.who": "someone_else"},
                   "rows": {"s.opens": {"min": 2}}}})
    res = run_selftest(path, root=repo_root)
    assert not res.ok and res.report is not None and res.report.is_file()
    assert len(res.mismatches) == 3
    assert res.mismatches[0].startswith("s.opened: expected not to fire, but it fired (")
    assert res.mismatches[0].endswith(" opens)")
    assert res.mismatches[1] == 'captures s.who: expected "someone_else", got "bpfr_openat"'
    assert res.mismatches[2] == "rows s.opens: expected at least 2 rows, got 1"


@pytest.mark.bpf
def test_workload_failing_at_start_fails_the_test(tmp_path: Path) -> None:
    path = write_runbook(tmp_path, {"workload": ["/bin/sh", "-c", "echo boom >&2; exit 3"],
                                    "expect": {"fired": ["s.opened"]}})
    res = run_selftest(path, root=tmp_path)
    assert not res.ok and res.report is None
    assert res.mismatches == ["workload `/bin/sh -c 'echo boom >&2; exit 3'` exited with "
                              "status 3 before the steps ran: boom"]


@pytest.mark.bpf
def test_timeout_stops_the_steps_and_the_workload_group_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    path = write_runbook(tmp_path, {
        "workload": ["/bin/sh", "-c", f"echo $$ > {pidfile}; sleep 300 & sleep 300"],
        "timeout": "1s", "expect": {"steps": {"s": "ran"}}}, duration="30s")
    began = time.monotonic()
    res = run_selftest(path, root=tmp_path)
    assert time.monotonic() - began < 15
    assert res.mismatches[0] == "timed out after 1s: the steps were stopped early"
    pgid = int(pidfile.read_text())
    assert _group_alive(pgid) == []
