"""`sample: 1/N` on real BPF (issue #18.4): a uprobe on malloc sampled 1 in 10 records about a
tenth of a workload's known number of allocations, and reads back scaled to about all of them,
next to the same probe unsampled (and one aggregation of it sampled 1 in 5); the report says
so."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers.runs import start_run, wait_for
from helpers.workloads import Workload

pytestmark = pytest.mark.bpf

MALLOCS, SIZE = 2000, 64


def run_with(tmp_path: Path, text: str, w: Workload) -> tuple[dict[str, Any], str]:
    """Run the runbook; start the waiting workload once its probes are attached."""
    rb = tmp_path / "sampled.yaml"
    rb.write_text(textwrap.dedent(text))
    out = tmp_path / "out"
    proc = start_run([rb, "-o", out])
    wait_for(proc, timeout=60)
    w.start()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return json.loads((out / "result.json").read_text()), (out / "report.md").read_text()


def test_malloc_sampled_one_in_ten_is_scaled_back(tmp_path: Path) -> None:
    with Workload("memleak_main", "--count", MALLOCS, "--rate", 20000, "--size", SIZE,
                  "--seconds", 30, wait_signal=True) as w:
        result, report = run_with(tmp_path, f"""\
            apiVersion: bpfrun/v1
            name: sampled
            title: Sampled mallocs
            steps:
              - id: m
                duration: 2s
                probes:
                  - probe: uprobe:libc:malloc
                    where: pid == {w.pid}
                    sample: 1/10
                    aggregate:
                      - {{id: sampled, count: true}}
                      - {{id: sampled_bytes, sum: arg0, unit: bytes}}
                  - probe: uprobe:libc:malloc
                    where: pid == {w.pid}
                    aggregate:
                      - {{id: every, count: true}}
                      - {{id: fifth, count: true, sample: 1/5}}
            """, w)
    step = result["steps"][0]
    aggs = step["aggregations"]
    every = aggs["every"]["rows"][0]["value"]
    sampled = aggs["sampled"]["rows"][0]["value"]
    assert MALLOCS <= every <= MALLOCS + 5  # the loop's mallocs, and stdio's buffer
    # Every 10th hit on each CPU, the first included: 10 × Σ ceil(hits on the CPU / 10).
    assert sampled % 10 == 0
    assert every <= sampled < every + 10 * (os.cpu_count() or 1), (every, sampled)
    fifth = aggs["fifth"]["rows"][0]["value"]  # sampled by the aggregation alone
    assert every <= fifth < every + 5 * (os.cpu_count() or 1) and fifth % 5 == 0, fifth
    sampled_bytes = aggs["sampled_bytes"]["rows"][0]["value"]
    # All SIZE, unless stdio's one buffer at the end was among the samples.
    assert sampled_bytes == sampled * SIZE or sampled_bytes % 10 == 0, sampled_bytes
    assert "aggregation sampled: sampled 1 in 10; counts scaled" in step["notes"]
    assert "sampled 1 in 10; counts scaled" in report
    assert "sampled 1 in 10 (counts scaled)" in report  # the explain section's probe line
