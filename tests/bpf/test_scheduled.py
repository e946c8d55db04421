"""Scheduled runs for real (issue #15): one run of a runbook at a time, a killed run's lock,
retention after runs, the free-space floor, and the Prometheus and Nagios outputs of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.paths import REPO

pytestmark = pytest.mark.bpf

RUNBOOK = """\
apiVersion: bpfrun/v1
name: {name}
title: T
steps:
  - id: s
    duration: {duration}
    probes:
      - probe: tracepoint:sched:sched_switch
        aggregate: [{{id: calls, count: true}}]
    thresholds:
      - id: never
        when: elapsed > 1h
        severity: critical
        message: impossible
"""


def runbook(tmp_path: Path, name: str, duration: str = "1s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RUNBOOK.format(name=name, duration=duration))
    return path


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def bpfrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120)


def reports() -> Path:
    return Path(os.environ["BPFRUN_REPORTS_DIR"])  # tests/bpf/conftest.py points it at tmp


def wait_for_lock(name: str, proc: subprocess.Popen[str]) -> None:
    """Until the run holds its lock (it writes its pid into the file once it does)."""
    lock = reports() / f".{name}.lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.exists() and lock.read_text().strip() == str(proc.pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"the run never took its lock: {proc.communicate()}")


def test_overlapping_runs_of_one_runbook_give_one_run_and_one_exit_5(tmp_path: Path) -> None:
    same = runbook(tmp_path, "overlap", "3s")
    other = runbook(tmp_path, "beside", "1s")
    first = start("run", str(same), "-q")
    wait_for_lock("overlap", first)
    second = bpfrun("run", str(same), "-q")
    beside = bpfrun("run", str(other), "-q")  # a different runbook runs side by side
    out, errs = first.communicate(timeout=120)
    assert first.returncode == 0, errs
    assert second.returncode == 5, second.stderr
    assert "overlap is already running (pid" in second.stderr
    assert "this run was skipped" in second.stderr and not second.stdout
    assert beside.returncode == 0, beside.stderr
    done = [p for p in reports().iterdir() if not p.is_symlink() and (p / "result.json").exists()]
    assert sorted(p.name.split("-")[0] for p in done) == ["beside", "overlap"]


def test_a_killed_runs_lock_does_not_block_the_next(tmp_path: Path) -> None:
    path = runbook(tmp_path, "killed", "30s")
    victim = start("run", str(path), "-q")
    wait_for_lock("killed", victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    after = bpfrun("run", str(runbook(tmp_path, "killed", "1s")), "-q")
    assert after.returncode == 0, after.stderr


def test_retention_prometheus_and_nagios_after_real_runs(tmp_path: Path) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    path = runbook(tmp_path, "kept")
    prom = tmp_path / "prom"
    prom.mkdir()
    for _ in range(3):
        r = bpfrun("run", str(path), "-q", "--keep", "2", "--prom-textfile", str(prom),
                   "--format", "nagios")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("BPFRUN OK - kept: no threshold fired | ")
        assert "'s.seconds'=" in r.stdout and "'s.calls'=" in r.stdout
    folders = sorted(p for p in reports().iterdir() if p.name.startswith("kept-"))
    assert len(folders) == 2 and (reports() / "latest").resolve() == folders[-1].resolve()
    text = (prom / "bpfrun_kept.prom").read_text()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for fam in parser.text_string_to_metric_families(text) for s in fam.samples}
    assert found[("bpfrun_last_run_exit_code", (("runbook", "kept"),))] == 0
    assert found[("bpfrun_threshold_fired", (("runbook", "kept"), ("severity", "critical"),
                                             ("step", "s"), ("threshold", "never")))] == 0
    assert any(n == "bpfrun_value" for n, _ in found)


def test_free_space_floor_refuses_before_the_run(tmp_path: Path) -> None:
    path = runbook(tmp_path, "full")
    r = bpfrun("run", str(path), "-q", "--min-free", "1000000GiB")
    assert r.returncode == 3, r.stderr
    assert "floor: the run was not started" in r.stderr
    assert not reports().exists() or not any(reports().glob("full-*"))
    r = bpfrun("run", str(path), "--format", "nagios", "--min-free", "1000000GiB")
    assert r.returncode == 3 and r.stdout.startswith("BPFRUN UNKNOWN - full: ")
    r = bpfrun("run", str(path), "-q", "--min-free", "1000000GiB", "--prom-textfile",
               str(tmp_path))
    text = (tmp_path / "bpfrun_full.prom").read_text()
    assert r.returncode == 3 and 'bpfrun_last_run_status{runbook="full",status="error"} 1' in text
    assert 'bpfrun_last_run_exit_code{runbook="full"} 3' in text
