"""`bpfrun merge` on the command line: the fleet fixture tree, its inventory, the exit codes,
and `bpfrun diff` reading a fleet result like a run's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.paths import FIXTURES, REPO

from bpfrun.result import validate_result

TREE = FIXTURES / "results" / "fleet"


def bpfrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=60, check=False)


def test_merge_writes_a_fleet_report_and_exits_with_the_worst_code(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    done = bpfrun("merge", str(TREE), "--inventory", str(TREE / "inventory.ini"),
                  "--min-coverage", "0.5", "-o", str(out))
    assert done.returncode == 4, done.stderr
    assert done.stdout.strip() == str(out / "report.md")
    doc = json.loads((out / "result.json").read_text())
    assert validate_result(doc) == []
    assert doc["hosts"]["missing"] == ["delta"]


def test_merge_of_the_clean_and_fired_hosts_exits_1_or_3_below_coverage(
        tmp_path: Path) -> None:
    hosts = [str(TREE / "alpha" / "result.json"), str(TREE / "bravo")]
    assert bpfrun("merge", *hosts, "-o", str(tmp_path / "a")).returncode == 1
    short = bpfrun("merge", *hosts, "-i", str(TREE / "inventory.ini"), "-o",
                   str(tmp_path / "b"))
    assert short.returncode == 3, short.stderr


def test_merge_refuses_different_runbooks(tmp_path: Path) -> None:
    done = bpfrun("merge", str(TREE), str(FIXTURES / "results" / "disk_failed.json"),
                  "-o", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "different runbooks" in done.stderr


def test_diff_reads_a_fleet_result(tmp_path: Path) -> None:
    bpfrun("merge", str(TREE / "alpha"), str(TREE / "charlie"), "-o", str(tmp_path / "before"))
    bpfrun("merge", str(TREE), "-o", str(tmp_path / "after"))
    done = bpfrun("diff", str(tmp_path / "before"), str(tmp_path / "after"), "-o",
                  str(tmp_path / "diff"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "diff" / "diff.json").is_file()


def test_an_earlier_fleet_report_in_the_tree_is_left_out(tmp_path: Path) -> None:
    tree = tmp_path / "results"
    shutil.copytree(TREE, tree)
    assert bpfrun("merge", str(tree), "-o", str(tree / "fleet")).returncode == 4
    again = bpfrun("merge", str(tree), "-o", str(tree / "fleet"))
    assert again.returncode == 4, again.stderr
    doc = json.loads((tree / "fleet" / "result.json").read_text())
    assert [m["host"] for m in doc["hosts"]["members"]] == ["charlie", "bravo", "alpha"]
    refused = bpfrun("merge", str(tree / "fleet"), "-o", str(tmp_path / "x"))
    assert refused.returncode == 2 and "a fleet result" in refused.stderr
