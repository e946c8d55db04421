"""The Nagios/Icinga plugin line: its grammar and the state codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.ops.nagios import nagios_output, nagios_unknown, perf_item
from bpfrun.result import Finding, RunResult

# Nagios plugin development guidelines: TEXT | 'label'=value[UOM];[warn];[crit];[min];[max]
LABEL = r"(?:'(?:[^'=]|'')+'|[^'= ]+)"
NUM = r"-?\d+(?:\.\d+)?"
PERF = rf"{LABEL}={NUM}(?:[a-zA-Z%]+)?(?:;(?:{NUM})?){{0,4}}"
LINE = re.compile(rf"BPFRUN (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+(?: \| {PERF}(?: {PERF})*)?")
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def fixture(name: str) -> RunResult:
    return RunResult.from_json(json.loads((FIXTURES / "results" / f"{name}.json").read_text()))


@pytest.mark.parametrize(("name", "state"), [("files_clean", 0), ("runq_fired", 1),
                                             ("disk_failed", 2)])
def test_line_matches_the_plugin_grammar(name: str, state: int) -> None:
    code, line = nagios_output(fixture(name))
    m = LINE.fullmatch(line)
    assert m is not None, line
    assert code == state == CODES[m.group(1)]


def test_critical_finding_is_named_first() -> None:
    _, line = nagios_output(fixture("disk_failed"))
    assert "[critical]" in line.split("|")[0]


def test_failed_run_without_findings_is_unknown_and_info_is_ok() -> None:
    failed = replace(fixture("disk_failed"), findings=())
    code, line = nagios_output(failed)
    assert code == 3 and LINE.fullmatch(line)
    info = replace(fixture("runq_fired"),
                   findings=(Finding("runq", "slow", "info", "a | note\nsecond line"),))
    code, line = nagios_output(info)
    assert code == 0 and LINE.fullmatch(line) and "a / note second line" in line


def test_unknown_for_a_run_that_never_started() -> None:
    code, line = nagios_unknown("triage", "error: no runbook 'triage'")
    assert code == 3 and LINE.fullmatch(line)


def test_perf_labels_are_quoted_and_numbers_plain() -> None:
    assert perf_item("it's", 0.0000015, "s") == "'it''s'=0.000002s"
    assert perf_item("a=b", 3, minimum=0) == "'a_b'=3;;;0"


def test_cli_invalid_runbook_is_unknown_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bpfrun/v1\nname: bad\n")
    for ref in ("no-such-runbook", str(bad)):
        done = subprocess.run([sys.executable, "-m", "bpfrun", "run", ref, "--format", "nagios"],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 3, done.stderr
        assert LINE.fullmatch(done.stdout.strip()), done.stdout
        assert done.stdout.startswith("BPFRUN UNKNOWN - ")
