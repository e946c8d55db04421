"""Symlinks in the output path do not steer root's reports elsewhere (issue #13, point 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import UsageError
from bpfrun.report.reportdir import default_report_dir, make_folder
from bpfrun.report.writers import write_atomic, write_outputs
from bpfrun.result import RunResult

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the guard applies to root only")


def result() -> RunResult:
    return RunResult.from_json(json.loads((FIXTURES / "results" / "runq_fired.json").read_text()))


def planted_link(tmp_path: Path, owner: int) -> tuple[Path, Path]:
    """`tmp/link -> tmp/elsewhere`, the link owned by `owner`."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    os.lchown(link, owner, owner)
    return link, elsewhere


@as_root
def test_a_folder_through_another_users_link_is_refused(tmp_path: Path) -> None:
    link, elsewhere = planted_link(tmp_path, NOBODY)
    with pytest.raises(UsageError, match="symbolic link owned by uid 65534"):
        write_outputs(link / "report", result(), {}, {})
    with pytest.raises(UsageError, match="symbolic link"):
        make_folder(link)
    with pytest.raises(UsageError, match="symbolic link"):
        default_report_dir("runq", base=link / "reports")
    assert list(elsewhere.iterdir()) == []


@as_root
def test_a_link_root_owns_is_followed(tmp_path: Path) -> None:
    link, elsewhere = planted_link(tmp_path, 0)
    write_outputs(link / "report", result(), {}, {})
    assert (elsewhere / "report" / "result.json").is_file()


def test_a_link_planted_at_a_file_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "report.md").symlink_to(victim)
    write_atomic(tmp_path / "report.md", "the report\n")
    assert victim.read_text() == "keep me\n"
    assert not (tmp_path / "report.md").is_symlink()
    assert (tmp_path / "report.md").read_text() == "the report\n"
