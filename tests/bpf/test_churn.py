"""No silent loss under process churn (issue #13, point 6): a map keyed by pid, far smaller
than the number of processes the step sees, is drained into user space during the step, so
every process is counted once and nothing is lost to a full map."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.runs import start_run, wait_for
from helpers.workloads import Workload

pytestmark = pytest.mark.bpf
PROCESSES = 1500
COMM = "bpfr_churn"  # (a 15-character comm filter fails to load: reported)


def test_a_small_pid_keyed_map_loses_nothing_to_a_thousand_processes(tmp_path: Path) -> None:
    child = tmp_path / COMM
    shutil.copy("/bin/true", child)
    rb = tmp_path / "churn.yaml"
    rb.write_text(f"""apiVersion: bpfrun/v1
name: churn
title: Churn
steps:
  - id: execs
    duration: 8s
    probes:
      - probe: tracepoint:sched:sched_process_exit
        where: comm == "{COMM}"
        aggregate:
          - {{id: by_pid, count: true, by: [pid], size: 512}}
""")
    out = tmp_path / "out"
    proc = start_run([rb, "-o", out])
    wait_for(proc)
    with Workload("execer", "--exec", str(child), "--rate", "500", "--count", str(PROCESSES),
                  "--seconds", "10") as w:
        totals = w.wait(timeout=60)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1), err
    assert int(totals["execs"]) == PROCESSES
    step = json.loads((out / "result.json").read_text())["steps"][0]
    assert step["lost"]["map_full"] == 0
    rows = step["aggregations"]["by_pid"]["rows"]
    assert sum(r["value"] for r in rows) == PROCESSES  # each process exits once
    assert all(r["value"] == 1 for r in rows)
