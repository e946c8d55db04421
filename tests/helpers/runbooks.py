"""A small runbook with a self-test, written for the self-test tests (unit and real runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_runbook(folder: Path, selftest: dict[str, Any] | None, duration: str = "2s") -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "bpfrun/v1", "name": "opens-test", "title": "Opens of a test workload",
        "description": "Counts openat calls of the openat_loop workload.",
        "params": {"pid": {"type": "pid", "default": 0, "description": "only this pid"}},
        "steps": [{
            "id": "s", "title": "Opens", "duration": duration,
            "probes": [{"probe": "tracepoint:syscalls:sys_enter_openat",
                        "where": 'comm == "bpfr_openat" && (params.pid == 0 '
                                 "|| pid == params.pid)",
                        "aggregate": [{"id": "opens", "count": True, "by": ["comm"]}]}],
            "thresholds": [{"id": "opened", "when": "opens.total > 10",
                            "message": "${{ opens.total }} opens"}],
            "capture": {"who": "opens.top[0].comm"},
        }],
    }
    if selftest is not None:
        doc["selftest"] = selftest
    path = folder / "opens-test.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


OPENAT = ["tests/workloads/openat_loop", "--seconds", "4", "--rate", "200"]
