"""Complete user stacks through Debian's libc, which keeps no frame pointers (issue #12.3):
`offcpu` on prodcons (-O0 and -O2, and -O2 without frame pointers) shows the producer's own
function directly above the libc frames it blocks in, for the sleep (clock_nanosleep ←
nanosleep ← usleep ← bpfr_producer) and for the lock wait (__lll_lock_wait ←
pthread_mutex_lock ← bpfr_producer), each at its marked line.
With unwinding turned off (BPFRUN_USER_UNWIND=0) the frame-pointer walk skips that caller:
the control that shows what the unwinder adds. `profile` on oncpu reaches the spinner from
samples inside the vDSO's clock_gettime, through libc's __clock_gettime.

Runs filter on the workload's pid, so other processes cannot change the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import REPO
from helpers.workloads import WORKLOAD_DIR, Workload

BPFRUN = [sys.executable, "-m", "bpfrun"]
PRODUCER = "bpfr_producer"


def offcpu(out: Path, pid: int, unwind: bool = True) -> dict[str, Any]:
    env = {**os.environ, "BPFRUN_USER_UNWIND": "1" if unwind else "0"}
    proc = subprocess.run([*BPFRUN, "run", "offcpu", "--param", f"pid={pid}", "--param",
                           "duration=2s", "-o", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads((out / "result.json").read_text())
    return doc


def marked_line(mark: str) -> int:
    lines = (WORKLOAD_DIR / "prodcons.c").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if mark in text)


def user_stacks(result: dict[str, Any]) -> list[list[dict[str, Any]]]:
    step = next(s for s in result["steps"] if s["id"] == "offcpu")
    return [row["frames"]["begin.ustack"] for row in step["aggregations"]["stacks"]["rows"]
            if (row.get("frames") or {}).get("begin.ustack")]


def caller_of_libc(frames: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first frame below the libc frames the stack starts with."""
    for frame in frames:
        if not (frame["module"] or "").startswith("libc"):
            return frame
    return None


def waits_in(result: dict[str, Any], libc_function: str) -> list[list[dict[str, Any]]]:
    return [frames for frames in user_stacks(result)
            if any(libc_function in (f["function"] or "") for f in frames[:3])]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("opt", "frame_pointers"), [("O0", True), ("O2", True), ("O2", False)])
def test_offcpu_names_the_producer_above_libc(opt: str, frame_pointers: bool,
                                              tmp_path: Path) -> None:
    # Without frame pointers in the program too: libc's rules recover the return address
    # into bpfr_producer (what follows it may be lost).
    with Workload("prodcons", opt=opt, frame_pointers=frame_pointers) as w:
        result = offcpu(tmp_path, w.pid)
    expected = {"clock_nanosleep": marked_line("/* BPFR_SLEEP_LINE */"),
                "__lll_lock_wait": marked_line("/* BPFR_LOCK_LINE */")}
    for libc_function, line in expected.items():
        stacks = waits_in(result, libc_function)
        assert stacks, [[f["function"] for f in s] for s in user_stacks(result)]
        callers = [caller_of_libc(s) for s in stacks]
        producers = [c for c in callers if c and c["function"] == PRODUCER]
        assert producers, [[f["function"] for f in s] for s in stacks]
        assert any(c["line"] == line for c in producers), producers
    report = (tmp_path / "report.md").read_text()
    assert f"{PRODUCER}+0x" in report


@pytest.mark.timeout(180)
def test_without_unwinding_the_frame_pointer_walk_skips_the_producer(tmp_path: Path) -> None:
    with Workload("prodcons", opt="O2", frame_pointers=True) as w:
        result = offcpu(tmp_path, w.pid, unwind=False)
    sleeps = waits_in(result, "clock_nanosleep")
    assert sleeps
    assert not any(f["function"] == PRODUCER for s in sleeps for f in s), sleeps


@pytest.mark.timeout(180)
def test_profile_names_the_spinner_above_the_vdso(tmp_path: Path) -> None:
    """Samples inside the vDSO's clock_gettime reach the program's own code through libc's
    __clock_gettime, which keeps no frame pointer either."""
    with Workload("oncpu", opt="O2", frame_pointers=True) as w:
        env = {**os.environ, "BPFRUN_USER_UNWIND": "1"}
        proc = subprocess.run([*BPFRUN, "run", "profile", "--param", f"pid={w.pid}",
                               "--param", "duration=2s", "-o", str(tmp_path)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    stacks = [frames for s in result["steps"] for a in s["aggregations"].values()
              for row in a["rows"] for frames in (row.get("frames") or {}).values()]
    in_vdso = [s for s in stacks if s and s[0]["module"] == "vdso"]
    assert in_vdso, [[f["function"] for f in s] for s in stacks]
    named = [s for s in in_vdso if any(f["function"] == "bpfr_spinner" for f in s)]
    assert len(named) * 2 > len(in_vdso), [[f["function"] for f in s] for s in in_vdso]
