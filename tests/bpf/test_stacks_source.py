"""Source-level stacks in answers (issue #12 points 1 and 2): the shipped runbooks, run on
the new workloads, name user frames as `function+0xoff (file.c:LINE) [module]` in
result.json's `frames` and the report, name the vDSO, mark inlined helpers, and count the
frames they could not name by reason (a stripped copy of a workload).

Every run filters on the workload's own pid, so other processes cannot change the answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import REPO
from helpers.workloads import WORKLOAD_DIR, Workload

BPFRUN = [sys.executable, "-m", "bpfrun"]


def bpfrun_run(runbook: str, out: Path, **params: object) -> dict[str, Any]:
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    proc = subprocess.run([*BPFRUN, "run", runbook, *args, "-o", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads((out / "result.json").read_text())
    return doc


def marked_line(workload: str, mark: str) -> int:
    lines = (WORKLOAD_DIR / f"{workload}.c").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if mark in text)


def all_frames(result: dict[str, Any], step: str, agg: str) -> list[dict[str, Any]]:
    found = next(s for s in result["steps"] if s["id"] == step)
    rows = found["aggregations"][agg]["rows"]
    return [f for row in rows for frames in (row.get("frames") or {}).values() for f in frames]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("opt", ["O0", "O2"])
def test_memleak_names_main_and_the_leaking_line(opt: str, tmp_path: Path) -> None:
    line = marked_line("memleak_main", "/* BPFR_LEAK_LINE */")
    with Workload("memleak_main", "--rate", "20", opt=opt) as w:
        result = bpfrun_run("memleak", tmp_path, pid=w.pid, duration="2s")
    # At the uprobe on malloc's entry the return address into main is spliced in as the
    # caller; it is looked up as a call site, so the line is the call's.
    frames = all_frames(result, "allocations", "malloc_bytes")
    mains = [f for f in frames if f["function"] == "main" and f["module"].startswith("memleak")]
    assert mains, frames
    assert any(f["file"].endswith("memleak_main.c") and f["line"] == line for f in mains), mains
    assert all(f["offset"] is not None for f in mains)
    report = (tmp_path / "report.md").read_text()
    assert f"(memleak_main.c:{line}) [memleak_main" in report
    step = next(s for s in result["steps"] if s["id"] == "allocations")
    assert step["symbols"]["user_frames"] > 0
    names = next(iter(step["aggregations"]["malloc_bytes"]["rows"]))["key"]
    assert all("+0x" not in n for n in names["ustack"]), "names stay function names"


@pytest.mark.timeout(120)
def test_profile_names_the_vdso_and_the_inlined_helper(tmp_path: Path) -> None:
    with Workload("oncpu", opt="O2") as w:
        result = bpfrun_run("profile", tmp_path, pid=w.pid, duration="2s")
    frames = [f for s in result["steps"] for a in s["aggregations"]
              for f in all_frames(result, s["id"], a)]
    assert any(f["module"] == "vdso" and f["function"] and "clock_gettime" in f["function"]
               for f in frames), {(f["function"], f["module"]) for f in frames}
    spin = [f for f in frames if f["function"] == "bpfr_busy_spin_us"]
    assert spin and any(f["inlined"] for f in spin), spin
    assert "(inlined)" in (tmp_path / "report.md").read_text()


@pytest.mark.timeout(120)
def test_unresolved_frames_of_a_stripped_binary_are_counted(tmp_path: Path) -> None:
    with Workload("oncpu") as original:
        binary = original.binary
    stripped = tmp_path / "oncpu-stripped"
    shutil.copy(binary, stripped)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    out = tmp_path / "out"
    proc = subprocess.Popen([str(stripped), "--seconds", "8"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        result = bpfrun_run("profile", out, pid=proc.pid, duration="2s")
    finally:
        proc.kill()
        proc.wait()
    symbols = [s["symbols"] for s in result["steps"] if "symbols" in s]
    assert symbols and symbols[0]["unresolved"] > 0, symbols
    reasons = {(u["reason"], Path(u["module"]).name) for s in symbols for u in s["by_reason"]}
    assert any(name == "oncpu-stripped" for _, name in reasons), reasons
    assert "user frames unresolved" in (out / "report.md").read_text()
