"""A small runbook with a self-test, written for the self-test tests (unit and real runs), and
typed self-test parts built from plain dicts for tests of the comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bpfrun.frontend.loader import load_text
from bpfrun.frontend.model import build_runbook
from bpfrun.frontend.selftest import Expect, Selftest


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


def selftest_of(selftest: dict[str, Any]) -> Selftest:
    """The typed Selftest of a `selftest:` section written as a dict (a `workload` is added
    when missing); neither schema nor checks run, so it may name steps nobody has."""
    doc = {"apiVersion": "bpfrun/v1", "name": "t", "title": "T", "steps": [],
           "selftest": {"workload": ["true"], **selftest}}
    built = build_runbook(load_text(yaml.safe_dump(doc, sort_keys=False), "t.yaml")).selftest
    assert built is not None
    return built


def expect_of(expect: dict[str, Any]) -> Expect:
    """The typed `expect:` section written as a dict, e.g. {"fired": ["runq.slow"]}."""
    return selftest_of({"expect": expect}).expect
