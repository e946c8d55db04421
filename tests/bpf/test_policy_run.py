"""`run` under the policy (issue #18.2, #18.5): a runbook that breaks it, or whose file changed
after it was checked, is refused before anything is loaded (exit 2, no report); a run that
passes writes a private report that opens with what the runbook reads and costs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.paths import REPO
from typer.testing import CliRunner

from bpfrun import cli
from bpfrun.compile import policy_check
from bpfrun.runtime import session

pytestmark = pytest.mark.bpf

HEAD = "apiVersion: bpfrun/v1\nname: {name}\ntitle: T\nsteps:\n  - id: s\n    duration: 1s\n"
LEAK = HEAD.format(name="leak") + """\
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        emit: [comm, str(args.buf)]
"""
COUNT = HEAD.format(name="count") + """\
    probes:
      - probe: tracepoint:syscalls:sys_enter_getppid
        aggregate: [{id: calls, count: true, by: [comm]}]
"""


def bpfrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120)


def reports() -> Path:
    return Path(os.environ["BPFRUN_REPORTS_DIR"])  # tests/bpf/conftest.py points it at tmp


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_refuses_a_runbook_against_the_policy_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "leak.yaml"
    path.write_text(LEAK)
    started = time.monotonic()
    r = bpfrun("run", str(path), "-q")
    assert r.returncode == 2, r.stderr
    assert f"{path}:9:22: error: policy rule 'user_memory.raw_buffers'" in r.stderr
    assert time.monotonic() - started < 30  # refused, not run for its second
    assert not reports().exists() or not any(reports().iterdir())


def test_run_refuses_a_runbook_changed_after_validation(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "count.yaml"
    path.write_text(COUNT)
    real = policy_check.check_runbook_policy

    def then_edited(*args: object, **kw: object) -> object:
        checked = real(*args, **kw)  # type: ignore[arg-type]
        path.write_text(COUNT.replace("getppid", "write"))  # between validation and loading
        return checked

    # Patched where `run` looks it up (session imports it by name), and at its home.
    monkeypatch.setattr(policy_check, "check_runbook_policy", then_edited)
    monkeypatch.setattr(session, "check_runbook_policy", then_edited)
    r = CliRunner().invoke(cli.app, ["run", str(path), "-q"])
    assert r.exit_code == 2, r.output
    assert "changed after it was validated" in r.output
    assert not reports().exists() or not any(reports().iterdir())


def test_a_run_writes_a_private_report_that_says_what_it_read(tmp_path: Path) -> None:
    path = tmp_path / "count.yaml"
    path.write_text(COUNT)
    r = bpfrun("run", str(path), "-q")
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip()).parent
    assert folder.parent == reports() and mode(folder) == 0o700
    assert {mode(p) for p in folder.iterdir()} == {0o600}
    assert (reports() / "latest" / "result.json").is_file()
    text = (folder / "report.md").read_text()
    assert "## What this runbook reads and costs" in text
    assert "per getppid system call" in text and "Reads no user memory." in text
    shared = tmp_path / "shared"
    r = bpfrun("run", str(path), "-q", "-o", str(shared), "--report-mode", "0640")
    assert r.returncode == 0, r.stderr
    assert mode(shared) == 0o750 and {mode(p) for p in shared.iterdir()} == {0o640}
