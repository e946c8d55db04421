"""Finding the runs to compare (latest, latest~N, folders, files) and `bpfrun diff` itself:
where it writes, what it prints, and exit 2 for runs that cannot be compared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.diff import folded_stacks, load_run, resolve_run, runs_of
from bpfrun.errors import UsageError
from bpfrun.report.reportdir import link_latest

RESULTS = FIXTURES / "results"


def bpfrun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120, env={**os.environ, **(env or {})})


def reports(tmp_path: Path) -> Path:
    """Three runs of runq-latency (two in one second) and one of files, latest → files'."""
    base = tmp_path / "reports"
    for name, fixture in [("runq-latency-20261125T100000Z", "runq_fired.json"),
                          ("runq-latency-20261125T110000Z", "runq_split_clean.json"),
                          ("runq-latency-20261125T110000Z-2", "runq_fired.json"),
                          ("runq-latency-20261125T120000Z", None),  # unfinished: no result
                          ("files-20261125T130000Z", "files_clean.json")]:
        (base / name).mkdir(parents=True)
        if fixture:
            shutil.copy(RESULTS / fixture, base / name / "result.json")
    link_latest(base / "runq-latency-20261125T110000Z-2")
    return base


def test_latest_and_latest_n_count_back_through_the_newest_runbook_s_runs(
        tmp_path: Path) -> None:
    base = reports(tmp_path)
    assert [p.name for p in runs_of(base, "runq-latency")] == [
        "runq-latency-20261125T100000Z", "runq-latency-20261125T110000Z",
        "runq-latency-20261125T110000Z-2"]
    assert resolve_run("latest", base=base).parent.name == "runq-latency-20261125T110000Z-2"
    assert resolve_run("latest~1", base=base).parent.name == "runq-latency-20261125T110000Z"
    assert resolve_run("latest~2", base=base).parent.name == "runq-latency-20261125T100000Z"
    with pytest.raises(UsageError, match="only 3 run"):
        resolve_run("latest~3", base=base)
    # Given the runbook (run NAME --baseline latest), latest is that runbook's newest run.
    assert resolve_run("latest", "files", base=base).parent.name == "files-20261125T130000Z"


def test_folders_and_files_name_their_result_and_missing_ones_are_usage_errors(
        tmp_path: Path) -> None:
    folder = reports(tmp_path) / "files-20261125T130000Z"
    assert resolve_run(str(folder)) == folder / "result.json"
    assert resolve_run(str(folder / "result.json")) == folder / "result.json"
    with pytest.raises(UsageError, match="no such report folder"):
        resolve_run(str(tmp_path / "nothing"))


def test_diff_writes_the_comparison_and_prints_its_report(tmp_path: Path) -> None:
    base = reports(tmp_path)
    out = tmp_path / "cmp"
    r = bpfrun("diff", "latest~1", "latest", "-o", str(out),
               env={"BPFRUN_REPORTS_DIR": str(base)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "report.md")
    doc = json.loads((out / "diff.json").read_text())
    assert doc["before"]["source"].endswith("runq-latency-20261125T110000Z")
    assert doc["changed"] is True
    text = (out / "report.md").read_text()
    assert "runq.slow fires now (it did not before)" in text


def test_diff_of_different_runbooks_exits_2_with_a_clear_error(tmp_path: Path) -> None:
    r = bpfrun("diff", str(RESULTS / "runq_fired.json"), str(RESULTS / "files_clean.json"),
               "-o", str(tmp_path / "cmp"))
    assert r.returncode == 2
    assert "cannot compare runs of different runbooks" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "cmp").exists()


def test_diff_of_something_that_is_no_result_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "result.json"
    bad.write_text('{"runbook": 1}')
    r = bpfrun("diff", str(bad), str(RESULTS / "runq_fired.json"), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "not a bpfrun result" in r.stderr


def test_stacks_come_from_the_folded_files_next_to_result_json(tmp_path: Path) -> None:
    """result.json keeps the top rows; the folder's folded file has every stack."""
    base = reports(tmp_path)
    folder = base / "runq-latency-20261125T100000Z"
    (folder / "offcpu-stacks.folded").write_text("main;only_in_the_file 7\nmain;other 3\n")
    path = folder / "result.json"
    stacks = folded_stacks(path, load_run(path))
    assert stacks == {"offcpu.stacks": {"main;only_in_the_file": 7, "main;other": 3}}
    out = tmp_path / "cmp"
    r = bpfrun("diff", str(folder), str(base / "runq-latency-20261125T110000Z"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "diff.json").read_text())
    agg = next(a for a in doc["aggregations"] if a["id"] == "stacks")
    assert agg["folded_before"] == {"main;only_in_the_file": 7, "main;other": 3}
    assert "main;only_in_the_file" in (out / "diff-offcpu-stacks-before.folded").read_text()
