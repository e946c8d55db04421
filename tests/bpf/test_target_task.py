"""target_task on real BPF (issue #17): a run's target tested on the thread a handler names,
not the current task. At sched_wakeup the current task is the waker, so a target on the
current task would keep the wakeups a unit makes; with `target_task: args.pid` it keeps the
waits of the unit's own tasks. The setup of test_task_cgroup.py (a hog and a waiter on one
CPU, each in a cgroup named like a systemd unit): aimed at the waiter's unit, the waiter's
waits are counted; aimed at the hog's, none of them is. Rows are picked by the waiter's
thread id, so other processes on a busy machine do not matter; the cgroups are removed
afterwards (the fixture's cgroup_tree).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bpf.test_task_cgroup import Contention, run
from tests.bpf.test_task_cgroup import contention as contention  # noqa: F401  (the fixture)

pytestmark = pytest.mark.bpf

WAITS = """\
apiVersion: bpfrun/v1
name: targetwaits
title: waits of the target's tasks
steps:
  - id: runq
    title: waits
    duration: 2s
    span:
      begin:
        probe: tracepoint:sched:sched_wakeup
        key: args.pid
        target_task: args.pid
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - {id: waits, count: true, by: [args.next_pid]}
"""


def waiter_waits(tmp_path: Path, contention: Contention, unit: str) -> int:
    rb = tmp_path / "targetwaits.yaml"
    rb.write_text(WAITS)
    doc = run(tmp_path, str(rb), "--unit", unit)
    rows = doc["steps"][0]["aggregations"]["waits"]["rows"]
    return sum(r["value"] for r in rows if r["key"]["args.next_pid"] == contention.waiter_tid)


def test_the_waiters_unit_counts_its_waits(contention: Contention,  # noqa: F811
                                           tmp_path: Path) -> None:
    # The waiter sleeps 1 ms at a time for 2 s: hundreds of waits, not a few.
    assert waiter_waits(tmp_path, contention, contention.wait_unit) > 50


def test_the_hogs_unit_does_not_count_the_waiters_waits(contention: Contention,  # noqa: F811
                                                        tmp_path: Path) -> None:
    assert waiter_waits(tmp_path, contention, contention.hog_unit) == 0


def test_runq_latency_aimed_at_the_hog_sees_no_waits_of_the_waiter(
        contention: Contention, tmp_path: Path) -> None:  # noqa: F811
    counts = {}
    for unit in (contention.hog_unit, contention.wait_unit):
        (tmp_path / unit).mkdir()
        doc = run(tmp_path / unit, "runbooks/runq-latency.yaml", "--unit", unit,
                  "-p", "comm=bpfr_spinner", "-p", "duration=2s")
        rows = doc["steps"][0]["aggregations"]["dist"]["rows"]  # none when nothing waited
        counts[unit] = sum(r["value"]["count"] for r in rows)
    assert counts[contention.hog_unit] == 0, counts
    assert counts[contention.wait_unit] > 50, counts
