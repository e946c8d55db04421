"""task_cgroup() on real BPF (issue #17): the waiting task's own cgroup at the run-queue
probes. A CPU hog (`spin`) runs in one cgroup named like a systemd unit, a waiter (`oncpu`'s
thread `bpfr_spinner`: 20 us of work, then 1 ms asleep, at SCHED_IDLE) in another, both
pinned to one CPU, so the waiter waits for the hog after each wakeup. A small runbook keys its
slow waits by the waiting thread, task_cgroup() of it, the holder and the holder's cgroup:
the waiter's waits are its own cgroup's, the hog's holds the hog's. The shipped runq-latency
names both units in its finding and in its by-cgroups view. Rows are picked by the
workloads' thread ids, so other processes on a busy machine do not matter; the cgroups are
removed afterwards, also when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.cgroups import cgroup_tree, unified_root_or_skip
from helpers.paths import REPO
from helpers.workloads import Workload

pytestmark = pytest.mark.bpf

WAITS = """\
apiVersion: bpfrun/v1
name: tcgwaits
title: slow waits by the waiting task's cgroup and the holder's
steps:
  - id: runq
    title: slow waits
    duration: 3s
    span:
      begin:
        probe: tracepoint:sched:sched_wakeup
        key: args.pid
        where: args.comm == "bpfr_spinner"
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - id: waits
          sum: duration
          by: [args.next_pid, task_cgroup(args.next_pid), args.prev_pid, cgroup]
          where: duration > 1ms
        - {id: unknown, count: true, by: ["task_cgroup(0)"]}
"""
VICTIM = "task_cgroup(args.next_pid)"


@dataclass(frozen=True)
class Contention:
    hog_unit: str
    hog_cgroup: int
    hog_pid: int  # the hog's only thread
    wait_unit: str
    wait_cgroup: int
    waiter_tid: int  # oncpu's bpfr_spinner thread


def _join(pid: int, cgroup_dir: Path, cpu: int, idle: bool) -> None:
    """Move process `pid` (all its threads) into the cgroup and onto `cpu`; SCHED_IDLE for
    the waiter, so that the hog keeps the CPU after each of its wakeups."""
    (cgroup_dir / "cgroup.procs").write_text(str(pid))
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        os.sched_setaffinity(tid, {cpu})
        if idle:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


@pytest.fixture(scope="module")
def contention() -> Iterator[Contention]:
    tag = uuid.uuid4().hex[:6]
    hog_rel, wait_rel = (f"system.slice/bpfrun-tcgh{tag}.service",
                         f"system.slice/bpfrun-tcgw{tag}.service")
    root = unified_root_or_skip()
    cpu = max(os.sched_getaffinity(0))
    with cgroup_tree([hog_rel, wait_rel], [], Path("/bin/true")) as ids, \
            Workload("spin", "--seconds", "120", "--name", "bpfr_tcghog",
                     wait_signal=True) as hog, \
            Workload("oncpu", "--seconds", "120", "--spin-us", "20", "--idle-us", "1000",
                     "--name", "bpfr_tcgwait", wait_signal=True) as waiter:
        _join(hog.pid, root / hog_rel, cpu, idle=False)
        _join(waiter.pid, root / wait_rel, cpu, idle=True)
        spinner = [t for t, name in waiter.thread_names().items() if name == "bpfr_spinner"]
        assert len(spinner) == 1, waiter.thread_names()
        hog.start()
        waiter.start()
        yield Contention(Path(hog_rel).name, ids[hog_rel], hog.pid,
                         Path(wait_rel).name, ids[wait_rel], spinner[0])


def run(tmp_path: Path, runbook: str, *args: str) -> dict:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bpfrun", "run", runbook, "-q", "-o",
                           str(out), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 1: findings
    return json.loads((out / "result.json").read_text())


def test_waits_are_the_waiters_cgroups_holds_the_hogs(contention: Contention,
                                                      tmp_path: Path) -> None:
    rb = tmp_path / "tcgwaits.yaml"
    rb.write_text(WAITS)
    aggs = run(tmp_path, str(rb))["steps"][0]["aggregations"]
    rows = aggs["waits"]["rows"]
    mine = [r for r in rows if r["key"]["args.next_pid"] == contention.waiter_tid]
    assert mine, rows
    by_victim: dict[int, float] = {}
    for r in mine:
        by_victim[r["key"][VICTIM]] = by_victim.get(r["key"][VICTIM], 0) + r["value"]
    # 0: a wait whose thread had not left a CPU since the step attached (its first sleep
    # began before): at most the first one.
    assert set(by_victim) <= {contention.wait_cgroup, 0}, (by_victim, contention)
    assert by_victim.get(contention.wait_cgroup, 0) > by_victim.get(0, 0)
    held = [r for r in rows if r["key"]["args.prev_pid"] == contention.hog_pid]
    assert held, rows
    assert {r["key"]["cgroup"] for r in held} == {contention.hog_cgroup}
    # A thread never switched out (the idle task's id is not recorded) reads 0.
    assert [r["key"]["task_cgroup(0)"] for r in aggs["unknown"]["rows"]] == [0]


def test_runq_latency_names_the_waiting_unit_and_the_holding_one(
        contention: Contention, tmp_path: Path) -> None:
    doc = run(tmp_path, "runbooks/runq-latency.yaml", "-p", "comm=bpfr_spinner",
              "-p", "threshold=2ms", "-p", "duration=2s")
    messages = [f["message"] for f in doc["findings"]]
    assert len(messages) == 1, doc["steps"][0]["thresholds"]
    assert (f"by cgroup, unit {contention.wait_unit} waited " in messages[0]
            and f" in all for a CPU while unit {contention.hog_unit} held it"
            in messages[0]), messages[0]
    names = doc["host"]["cgroups"]
    assert names[str(contention.hog_cgroup)] == f"unit {contention.hog_unit}"
    assert names[str(contention.wait_cgroup)] == f"unit {contention.wait_unit}"
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"| unit {contention.wait_unit} | unit {contention.hog_unit} |" in report
