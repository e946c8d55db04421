"""Pruning report folders: the newest and `latest` stay, incomplete ones are never touched;
and the free-space floor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import MachineError, UsageError
from bpfrun.ops.lock import AlreadyRunning
from bpfrun.ops.retention import (
    check_free_space,
    parse_keep,
    parse_min_free,
    prune,
    report_folders,
)
from bpfrun.report.reportdir import link_latest
from bpfrun.result import RunResult


def make(base: Path, name: str, complete: bool = True) -> Path:
    folder = base / name
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("x")
    if complete:
        (folder / "result.json").write_text("{}")
    return folder


def test_keep_n_removes_the_oldest_complete_ones(tmp_path: Path) -> None:
    folders = [make(tmp_path, f"triage-2026120{d}T000000Z") for d in range(1, 7)]
    link_latest(folders[-1])
    removed = prune(tmp_path, "triage", keep=2)
    assert removed == folders[:4]
    assert [f.path for f in report_folders(tmp_path, "triage")] == folders[4:]


def test_latest_and_incomplete_folders_are_never_pruned(tmp_path: Path) -> None:
    old_latest = make(tmp_path, "triage-20261201T000000Z")
    writing = make(tmp_path, "triage-20261202T000000Z", complete=False)
    newer = [make(tmp_path, f"triage-2026120{d}T000000Z") for d in (3, 4)]
    link_latest(old_latest)  # e.g. the newest runs were written with -o, or latest lags
    assert prune(tmp_path, "triage", keep=1) == [newer[0]]
    assert old_latest.is_dir() and writing.is_dir() and newer[1].is_dir()


def test_other_runbooks_and_other_files_are_left_alone(tmp_path: Path) -> None:
    mine = [make(tmp_path, f"runq-2026120{d}T000000Z") for d in (1, 2)]
    other = make(tmp_path, "runq-latency-20261201T000000Z")
    user = make(tmp_path, "runq-notes")
    assert prune(tmp_path, "runq", keep=1) == [mine[0]]
    assert other.is_dir() and user.is_dir()


def test_same_second_suffixes_sort_after_their_first(tmp_path: Path) -> None:
    a = make(tmp_path, "t-20261201T000000Z")
    b = make(tmp_path, "t-20261201T000000Z-2")
    c = make(tmp_path, "t-20261201T000000Z-10")
    assert [f.path for f in report_folders(tmp_path, "t")] == [a, b, c]


def test_keep_days_removes_by_age(tmp_path: Path) -> None:
    old = make(tmp_path, "t-20261120T000000Z")
    recent = make(tmp_path, "t-20261201T120000Z")
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert prune(tmp_path, "t", keep_days=7, now=now) == [old]
    assert recent.is_dir()


def test_nothing_is_pruned_without_a_rule(tmp_path: Path) -> None:
    make(tmp_path, "t-20261120T000000Z")
    assert prune(tmp_path, "t") == []


@pytest.mark.parametrize(("keep", "days"), [(0, None), (None, "0"), (None, "x"),
                                            (None, "inf")])
def test_bad_keep_options_are_usage_errors(keep: int | None, days: str | None) -> None:
    with pytest.raises(UsageError):
        parse_keep(keep, days)


def test_free_space_floor(tmp_path: Path) -> None:
    check_free_space(tmp_path / "not" / "yet", parse_min_free("1MiB"))
    check_free_space(tmp_path, parse_min_free("0"))
    with pytest.raises(MachineError) as e:
        check_free_space(tmp_path, 2**62)
    assert e.value.exit_code == 3
    assert "floor: the run was not started" in e.value.render()
    with pytest.raises(UsageError):
        parse_min_free("lots")


def test_scheduled_runs_keep_96_by_default_and_o_folders_are_not_pruned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bpfrun.ops.runops import RunOps

    monkeypatch.setenv("BPFRUN_REPORTS_DIR", str(tmp_path))
    monkeypatch.setenv("BPFRUN_SCHEDULED", "1")
    assert RunOps("t", None).keep == 96
    assert RunOps("t", None, keep_days="2").keep is None  # an explicit rule replaces it
    monkeypatch.setenv("BPFRUN_SCHEDULED", "0")
    assert RunOps("t", None).keep is None
    result = RunResult.from_json(json.loads((FIXTURES / "results" / "files_clean.json")
                                            .read_text()))
    folders = [make(tmp_path, f"t-2026120{d}T000000Z") for d in (1, 2, 3)]
    mine = make(tmp_path / "elsewhere", "mine")
    ops = RunOps("t", mine, keep=1).start()
    with pytest.raises(AlreadyRunning):
        RunOps("t", None).start()
    assert ops.finish(result, mine) == []  # a run written with -o prunes nothing
    assert all(f.is_dir() for f in folders)
    ops = RunOps("t", None, keep=1, prom_dir=tmp_path).start()  # the lock was released
    assert ops.finish(result, folders[-1]) == folders[:2]
    assert (tmp_path / "bpfrun_t.prom").is_file()
