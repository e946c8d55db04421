"""The output folder: formats picked by name, result.json always and last, the default reports
directory and its `latest` link (no BPF)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import FIXTURES

from bpfrun.errors import UsageError
from bpfrun.report import reportdir, writers
from bpfrun.report.html import render_html
from bpfrun.report.markdown import render_markdown
from bpfrun.report.reportdir import default_report_dir, link_latest, reports_base
from bpfrun.report.writers import REPORTERS, parse_formats, write_outputs
from bpfrun.result import RunResult

RESULTS = FIXTURES / "results"
NOW = datetime(2026, 11, 25, 10, 0, 7, tzinfo=UTC)
PROGRAMS = {"runq": "/* runq */\n", "offcpu": "/* offcpu */\n"}


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def load(name: str) -> RunResult:
    return RunResult.from_json(doc(name))


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


ARTIFACTS = ["offcpu-stacks.folded", "offcpu-stacks.svg", "offcpu.c", "runq.c"]


def test_reporters_are_picked_by_name() -> None:
    assert list(REPORTERS) == ["md", "html", "json"]  # the writing order: result.json last
    assert {n: r.file for n, r in REPORTERS.items()} == {
        "md": "report.md", "html": "report.html", "json": "result.json"}


def test_parse_formats_always_keeps_json_and_rejects_unknown_names() -> None:
    assert parse_formats("md, HTML") == {"md", "html", "json"}
    assert parse_formats("md") == {"md", "json"}
    assert parse_formats("json") == {"json"}
    assert parse_formats("") == {"md", "html", "json"}
    with pytest.raises(UsageError, match="unknown format 'pdf'") as e:
        parse_formats("md,pdf")
    assert "md, html, json" in (e.value.hint or "")


def test_each_format_writes_its_file_and_json_is_always_written(tmp_path: Path) -> None:
    result = load("runq_fired")
    only_md = write_outputs(tmp_path / "a", result, PROGRAMS, {}, {"md"})
    assert files(tmp_path / "a") == sorted(ARTIFACTS + ["report.md", "result.json"])
    assert only_md == {"md": tmp_path / "a" / "report.md", "json": tmp_path / "a" / "result.json"}
    only_json = write_outputs(tmp_path / "b", result, PROGRAMS, {}, {"json"})
    assert files(tmp_path / "b") == sorted(ARTIFACTS + ["result.json"])  # what it names exists
    assert list(only_json) == ["json"]
    both = write_outputs(tmp_path / "c", result, PROGRAMS, {})
    assert list(both) == ["md", "html", "json"]
    # render_html (html.py) still takes the document; it reads it into the same RunResult.
    assert both["html"].read_text() == render_html(result.to_json(), PROGRAMS)
    assert both["md"].read_text() == render_markdown(result, PROGRAMS)
    assert json.loads(both["json"].read_text()) == doc("runq_fired") == result.to_json()


def test_html_and_svg_file_show_the_same_folded_stacks(tmp_path: Path) -> None:
    folded = {"offcpu.stacks": {"clone3;start_thread;main;__schedule_[k]": 42}}
    out = write_outputs(tmp_path, load("runq_fired"), {}, folded)
    svg = (tmp_path / "offcpu-stacks.svg").read_text()
    html = out["html"].read_text()
    assert "main (42ns, 100.00%)" in svg and "main (42ns, 100.00%)" in html
    body = svg[svg.index("<svg"):]
    inline = html[html.index("<svg"): html.index("</svg>") + 7]
    assert inline == body.replace("background", "offcpu-stacks-flamegraph-background")


def test_result_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = writers.write_atomic

    def recording(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o600) -> None:
        order.append(Path(path).name)
        real(path, data, mode)

    monkeypatch.setattr(writers, "write_atomic", recording)
    write_outputs(tmp_path, load("runq_fired"), PROGRAMS, {})
    assert order[-1] == "result.json"
    assert sorted(order) == files(tmp_path)


def test_a_failed_write_leaves_no_result_json(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = writers.write_atomic

    def full_disk(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o600) -> None:
        if Path(path).name == "report.html":
            raise OSError(28, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(writers, "write_atomic", full_disk)
    with pytest.raises(UsageError, match="No space left on device"):
        write_outputs(tmp_path, load("runq_fired"), PROGRAMS, {})
    assert "report.md" in files(tmp_path) and "result.json" not in files(tmp_path)


def test_default_report_dir_is_named_after_the_runbook_and_utc_time(tmp_path: Path) -> None:
    first = default_report_dir("runq-latency", NOW, tmp_path)
    assert first == tmp_path / "runq-latency-20261125T100007Z" and first.is_dir()
    assert default_report_dir("runq-latency", NOW, tmp_path).name == \
        "runq-latency-20261125T100007Z-2"  # same second: a new folder, never a shared one
    paris = timezone(timedelta(hours=1))
    assert default_report_dir("x", datetime(2026, 11, 25, 11, 0, 7, tzinfo=paris),
                              tmp_path).name == "x-20261125T100007Z"
    assert default_report_dir("y", NOW.replace(tzinfo=None), tmp_path).name == \
        "y-20261125T100007Z"  # naive means UTC
    assert default_report_dir("../../etc", NOW, tmp_path).parent == tmp_path


def test_reports_base_follows_the_documented_order(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "var" / "lib" / "bpfrun" / "reports"
    monkeypatch.setattr(reportdir, "SYSTEM_REPORTS_DIR", system)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("BPFRUN_REPORTS_DIR", str(tmp_path / "env"))
    assert reports_base() == tmp_path / "env"
    monkeypatch.setenv("BPFRUN_REPORTS_DIR", "")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert reports_base() == system and system.is_dir()
    assert oct(system.stat().st_mode & 0o777) == oct(0o750)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert reports_base() == tmp_path / "state" / "bpfrun" / "reports"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert reports_base() == tmp_path / "home" / ".local" / "state" / "bpfrun" / "reports"


def test_root_falls_back_to_the_users_state_dir_when_var_is_not_writable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a file where a directory should be")
    monkeypatch.setattr(reportdir, "SYSTEM_REPORTS_DIR", blocker / "reports")
    monkeypatch.delenv("BPFRUN_REPORTS_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert reports_base() == tmp_path / "state" / "bpfrun" / "reports"


def test_an_unusable_reports_dir_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create a report folder") as e:
        default_report_dir("runq", NOW, blocker)
    assert "BPFRUN_REPORTS_DIR" in (e.value.hint or "")


def test_latest_points_at_the_newest_complete_report(tmp_path: Path) -> None:
    first = default_report_dir("runq", NOW, tmp_path)
    write_outputs(first, load("runq_fired"), {}, {}, latest=True)
    latest = tmp_path / "latest"
    assert latest.is_symlink() and os.readlink(latest) == first.name  # relative
    second = default_report_dir("runq", NOW + timedelta(seconds=5), tmp_path)
    write_outputs(second, load("files_clean"), {}, {}, {"json"}, latest=True)
    assert os.readlink(latest) == second.name
    assert json.loads((latest / "result.json").read_text())["runbook"]["name"] == "file-activity"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_latest_is_not_moved_by_explicit_folders_or_over_a_real_directory(tmp_path: Path) -> None:
    write_outputs(tmp_path / "mine", load("runq_fired"), {}, {})
    assert not (tmp_path / "latest").exists()
    (tmp_path / "latest").mkdir()
    assert link_latest(tmp_path / "mine") is False
    assert (tmp_path / "latest").is_dir() and not (tmp_path / "latest").is_symlink()
