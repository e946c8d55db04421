"""Percentile thresholds against the real kernel are decided on exact counts (issue #12.6).

The sized_writes workload makes an exact share of its writes 1001 bytes and the rest 999:
both in the log2 bucket [512, 1024), whose upper bound alone would put p99 over a 1000-byte
limit whatever the share. `sizes.p99 > params.limit` must fire only when more than 1 % of
the writes are over the limit, and the message must say how many were.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import REPO
from helpers.workloads import Workload

pytestmark = pytest.mark.bpf

WRITES = 2000
RUNBOOK = """
    params:
      limit: {{type: size, default: 1000B}}
    steps:
      - id: w
        duration: 3s
        probes:
          - probe: tracepoint:syscalls:sys_enter_write
            where: pid == {pid} && comm == "bpfr_sizedw"
            aggregate:
              - {{id: sizes, hist: args.count, unit: bytes}}
        thresholds:
          - id: big
            when: sizes.p99 > params.limit
            message: >-
              ${{{{ over(sizes, params.limit) }}}} of ${{{{ sizes.count }}}} writes
              (${{{{ percent(over(sizes, params.limit), sizes.count) }}}} %) over
              ${{{{ params.limit }}}}; p99 between ${{{{ sizes.p99_low }}}} and
              ${{{{ sizes.p99 }}}}
    """


def run_runbook(tmp_path: Path, body: str, workload: Workload) -> dict[str, Any]:
    """Run the runbook; start the (waiting) workload once its probes are attached."""
    rb = tmp_path / "t.yaml"
    rb.write_text("apiVersion: bpfrun/v1\nname: t\ntitle: T\n" + textwrap.dedent(body))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bpfrun", "run", str(rb), "-o", str(out)],
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        log.append(line)
        if not line or ": attached" in line:
            break
    workload.start()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (0, 1), "".join(log) + err
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


def run_share(tmp_path: Path, every: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Write WRITES times, every `every`-th one over the limit; the step and the totals."""
    with Workload("sized_writes", "--count", str(WRITES), "--every", str(every),
                  "--rate", "4000", "--seconds", "30", wait_signal=True) as w:
        result = run_runbook(tmp_path, RUNBOOK.format(pid=w.pid), workload=w)
        totals = w.stop()
    s: dict[str, Any] = result["steps"][0]
    assert s["status"] == "ran", s["reason"]
    return s, totals


@pytest.mark.parametrize(("every", "fires"), [(200, False), (100, False), (33, True)])
def test_p99_over_a_limit_fires_only_when_more_than_one_percent_are_over(
        tmp_path: Path, every: int, fires: bool) -> None:
    s, totals = run_share(tmp_path, every)
    over = int(totals["over"])  # 10 (0.5 %), 20 (exactly 1 %: p99 is 999), 60 (3 %)
    value = s["aggregations"]["sizes"]["rows"][0]["value"]
    assert value["count"] == WRITES
    assert value["buckets"] == [{"low": 512, "high": 1024, "count": WRITES}]
    assert value["over"] == [{"limit": 1000, "count": over}]
    big = s["thresholds"]["big"]
    assert big["fired"] is fires
    share = f"{100 * over / WRITES:.4g}"
    assert big["message"].startswith(f"{over} of {WRITES} writes ({share} %) over 1000B")
    assert value["p99"] == (1001 if fires else 1000)  # bounded by the exact count, not 1024
