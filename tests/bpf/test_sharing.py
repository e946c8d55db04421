"""Aggregations sharing one map (compile/lower/sharing.py), run for real: the members keyed
alike and the count summed in user space give exactly what separate maps gave, also when
the shared map is drained into user space again and again during the step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.runs import start_run, wait_for

pytestmark = pytest.mark.bpf
SIZES = 300  # distinct write sizes: distinct keys, far more than the map's 64 entries

# Waits for a line on stdin (bpfrun is attached), then writes 1..SIZES bytes to /dev/null
# twice each, pausing so that the drain (every 20 ms) keeps up, and 7 writes to a bad fd.
CHILD = f"""
import os, sys, time
sys.stdin.readline()
fd = os.open("/dev/null", os.O_WRONLY)
for n in range(1, {SIZES} + 1):
    os.write(fd, b"x" * n)
    os.write(fd, b"x" * n)
    time.sleep(0.002)
for _ in range(7):
    try:
        os.write(9999, b"x")
    except OSError:
        pass
"""

RUNBOOK = """apiVersion: bpfrun/v1
name: sharing
title: Sharing
params:
  pid: {type: pid, default: 0}
steps:
  - id: writes
    duration: 15s
    stop_after: 607
    probes:
      - probe: tracepoint:syscalls:sys_exit_write
        where: pid == params.pid
        aggregate:
          - {id: by_process, count: true, by: [pid]}
          - {id: calls, count: true, by: [pid, args.ret], size: 64}
          - {id: written, stats: args.ret, by: [pid, args.ret], where: args.ret > 0, size: 64}
          - {id: failed, count: true, by: [pid, args.ret], where: args.ret < 0, size: 64}
      - probe: interval:ms:200
"""


def test_shared_and_derived_aggregations_count_exactly_through_drains(tmp_path: Path) -> None:
    rb = tmp_path / "sharing.yaml"
    rb.write_text(RUNBOOK)
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, text=True)
    out = tmp_path / "out"
    try:
        run = start_run([rb, "-o", out, "--param", f"pid={child.pid}"])
        wait_for(run)
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0
        _, err = run.communicate(timeout=60)
    finally:
        child.kill()
    assert run.returncode in (0, 1), err
    step = json.loads((out / "result.json").read_text())["steps"][0]
    aggs = step["aggregations"]
    assert step["lost"]["map_full"] == 0
    calls = {r["key"]["args.ret"]: r["value"] for r in aggs["calls"]["rows"]}
    assert calls == {**{n: 2 for n in range(1, SIZES + 1)}, -9: 7}  # -EBADF
    written = {r["key"]["args.ret"]: r["value"] for r in aggs["written"]["rows"]}
    assert set(written) == set(range(1, SIZES + 1))  # no row for the failed writes
    assert all(v["count"] == 2 and v["min"] == v["max"] == n for n, v in written.items())
    failed = aggs["failed"]["rows"]
    assert [(r["key"]["args.ret"], r["value"]) for r in failed] == [(-9, 7)]
    assert aggs["by_process"]["rows"] == [{"key": {"pid": child.pid}, "value": 2 * SIZES + 7}]
    # The running totals read the shared entry's members and the derived count's source (the
    # failed writes come last, after the last tick: their gains may all be 0).
    points = step["series"]["points"]
    for agg, final in (("by_process", 2 * SIZES + 7), ("calls", 2 * SIZES + 7),
                       ("written", 2 * SIZES), ("failed", 7)):
        gains = [p[agg] for p in points]
        assert all(g >= 0 for g in gains) and sum(gains) <= final, (agg, gains)
        assert sum(gains) > 0 or agg == "failed", (agg, gains)
