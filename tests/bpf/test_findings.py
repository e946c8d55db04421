"""Findings that name the culprit's code (issue #12 points 4, 5 and 7), on the classic
examples: memleak names `main` and the leaking line of a slow leak; profile names the
spinning helper and its line, via clock_gettime; offcpu counts a lock wait against the lock's
holder and a sleep against the timer, not against the task a timer interrupted.

Every run filters on the workload's own pid, so other processes cannot change the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.workloads import Workload

from bpfrun.expr.frames import code_via
from bpfrun.expr.wakeups import waker
from bpfrun.result import FramedStack, StackFrame
from tests.bpf.test_stacks_source import bpfrun_run, marked_line


def step(result: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in result["steps"] if s["id"] == step_id)
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("opt", ["O0", "O2"])
def test_memleak_names_main_and_its_line_for_a_slow_leak(opt: str, tmp_path: Path) -> None:
    line = marked_line("memleak_main", "/* BPFR_LEAK_LINE */")
    # 1 KiB a second: far below the absolute threshold (min_outstanding: 100 blocks).
    with Workload("memleak_main", "--rate", "1", "--count", "60", opt=opt) as w:
        result = bpfrun_run("memleak", tmp_path, pid=w.pid, duration="5s")
    s = step(result, "allocations")
    assert s["captures"]["leak_code"] == f"main (memleak_main.c:{line})", s["captures"]
    leak = s["thresholds"]["leak"]
    assert leak["fired"], leak
    assert f"allocated at main (memleak_main.c:{line}) were not freed" in leak["message"]
    assert "(0 freed)" in leak["message"] and "outstanding memory grew by" in leak["message"]
    assert not s["thresholds"]["outstanding"]["fired"]


# Most samples are in the vDSO, called through libc's __clock_gettime; neither keeps a frame
# pointer. Perf samples step over both by their .eh_frame rules (issue #12.3), so the stack
# reaches bpfr_busy_spin_us (inlined into bpfr_spinner at -O2).
@pytest.mark.timeout(120)
@pytest.mark.parametrize("opt", ["O0", "O2"])
def test_profile_names_the_spinning_helper_and_its_line_via_clock_gettime(
        opt: str, tmp_path: Path) -> None:
    line = marked_line("oncpu", "/* BPFR_SPIN_LINE */")
    with Workload("oncpu", opt=opt) as w:
        result = bpfrun_run("profile", tmp_path, pid=w.pid, duration="3s", busy_percent=30)
    s = step(result, "cpu")
    assert s["captures"]["hot_code"] == \
        f"bpfr_busy_spin_us (oncpu.c:{line}) via clock_gettime", s["captures"]
    busy = s["thresholds"]["busy"]
    assert busy["fired"] and "in bpfr_busy_spin_us (oncpu.c:" in busy["message"], busy
    assert s["captures"]["hot_share"] > 50


@pytest.mark.timeout(120)
def test_offcpu_counts_lock_waits_against_the_holder_and_sleeps_against_the_timer(
        tmp_path: Path) -> None:
    with Workload("prodcons") as w:
        result = bpfrun_run("offcpu", tmp_path, pid=w.pid, comm="bpfr_producer",
                            duration="3s")
    offcpu = step(result, "offcpu")["captures"]
    assert offcpu["top_waiter"] == "bpfr_producer"
    # Most of the producer's time off the CPU is its own sleep, named above libc's frames.
    sleep_line = marked_line("prodcons", "/* BPFR_SLEEP_LINE */")
    assert offcpu["wait_code"] == f"bpfr_producer (prodcons.c:{sleep_line}) via usleep"
    s = step(result, "wakers")
    assert s["captures"]["waker"] == "timer"  # ~80 % of the time is the sleep
    assert s["captures"]["task_waker"] == "bpfr_consumer"
    assert s["thresholds"]["woken_by_task"]["fired"]
    lock_line = marked_line("prodcons", "/* BPFR_LOCK_LINE */")
    woken: dict[str, set[str]] = {"futex": set(), "sleep": set()}
    for row in s["aggregations"]["by_wait"]["rows"]:
        waited_in = row["key"]["begin.kstack"]
        kind = "futex" if any("futex" in f for f in waited_in) else \
            "sleep" if any("nanosleep" in f for f in waited_in) else None
        if kind:
            woken[kind].add(waker(row["key"]["kstack"], row["key"]["comm"]))
        if kind == "futex":  # the wait is named in the producer's own code, at its line
            frames = tuple(StackFrame.from_json(f) for f in row["frames"]["begin.ustack"])
            user = FramedStack(row["key"]["begin.ustack"], frames)
            assert code_via(user) == \
                f"bpfr_producer (prodcons.c:{lock_line}) via pthread_mutex_lock", row
    assert woken == {"futex": {"bpfr_consumer"}, "sleep": {"timer"}}, woken
