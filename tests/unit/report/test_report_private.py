"""Reports are private by default (issue #18.5) and open with what the runbook reads and costs
(issue #18.1)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.compile.explain import explain_runbook
from bpfrun.errors import UsageError
from bpfrun.frontend.params import placeholder_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel
from bpfrun.report.blocks import Section
from bpfrun.report.document import build_document
from bpfrun.report.markdown import markdown_text
from bpfrun.report.reportdir import LATEST, default_report_dir
from bpfrun.report.writers import parse_mode, write_outputs
from bpfrun.result import RunResult

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def result() -> RunResult:
    return RunResult.from_json(json.loads((FIXTURES / "results" / "runq_fired.json").read_text()))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _wide_umask() -> object:
    old = os.umask(0o022)  # a usual umask: reports must be private whatever it is
    yield
    os.umask(old)


def test_a_report_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    folder = default_report_dir("runq", NOW, tmp_path)
    assert mode(folder) == 0o700
    written = write_outputs(folder, result(), {"runq": "/* runq */\n"}, {}, latest=True)
    assert written and all(mode(p) == 0o600 for p in folder.iterdir())
    assert (tmp_path / LATEST / "result.json").is_file()  # the latest link still works
    out = tmp_path / "new" / "dir"  # -o DIR that does not exist yet
    write_outputs(out, result(), {}, {})
    assert mode(out) == 0o700 and mode(out / "result.json") == 0o600


def test_a_report_mode_shares_it_and_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = default_report_dir("runq", NOW, tmp_path, mode=0o640)
    assert mode(folder) == 0o750
    write_outputs(folder, result(), {}, {}, mode=0o640)
    assert {mode(p) for p in folder.iterdir()} == {0o640}
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    write_outputs(existing, result(), {}, {})
    assert mode(existing) == 0o755 and mode(existing / "report.md") == 0o600


@pytest.mark.parametrize(("text", "value"), [("0600", 0o600), ("640", 0o640),
                                             ("0644", 0o644)])
def test_report_modes_are_octal_read_write_bits(text: str, value: int) -> None:
    assert parse_mode(text) == value


@pytest.mark.parametrize("text", ["0755", "0400", "rw", "-1", "04600", "0660x"])
def test_other_report_modes_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--report-mode"):
        parse_mode(text)


def test_the_report_opens_with_what_the_runbook_reads_and_costs() -> None:
    rb = load_runbook(REPO / "runbooks" / "runq-latency.yaml")
    expl = explain_runbook(rb, placeholder_params(rb), FakeKernel(FIXTURES / "tracefs"))
    doc = build_document(result(), {}, {}, expl)
    titles = [b.title for b in doc.blocks if isinstance(b, Section)]
    assert titles[0] == ("What this runbook reads and costs",)
    assert titles[1] == ("Findings",)
    text = markdown_text(doc)
    assert "## What this runbook reads and costs" in text
    assert "per context switch" in text and "Reads no user memory." in text
    assert "What this runbook" not in markdown_text(build_document(result(), {}, {}))
