"""Find the runs to compare: a report folder, a result.json, `latest` or `latest~N`.

`latest` is the reports folder's `latest` link (bpfrun/report/reportdir.py); `latest~N` is
the N-th run before the newest of the same runbook there (`latest~0` is `latest`), found by
the report folders' names, `<runbook>-<UTC start>[-n]`, so no other run's result is read.
Given a runbook's name (`run NAME --baseline latest`), `latest` means that runbook's newest
run rather than whatever ran last.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bpfrun.errors import UsageError
from bpfrun.report.flamegraph import is_stack_aggregation, stack_files
from bpfrun.report.reportdir import LATEST, reports_base
from bpfrun.result import ResultFormatError, RunResult

_LATEST = re.compile(r"latest(?:~(\d+))?")
RESULT_FILE = "result.json"


def resolve_run(spec: str, runbook: str | None = None, base: Path | None = None) -> Path:
    """The result.json that `spec` names; UsageError when there is none."""
    m = _LATEST.fullmatch(spec.strip())
    if m is None:
        path = Path(spec).expanduser()
        file = path / RESULT_FILE if path.is_dir() else path
        if not file.is_file():
            raise UsageError(f"{spec}: no such report folder or result.json",
                             hint="give a report folder, a result.json, latest or latest~N")
        return file
    root = base if base is not None else reports_base()
    back = int(m.group(1) or 0)
    name = runbook or _latest_runbook(root, spec)
    runs = runs_of(root, name)
    if back >= len(runs):
        have = f"only {len(runs)} run(s) of {name}" if runs else f"no run of {name}"
        raise UsageError(f"{spec}: {have} in {root}",
                         hint="run it first, or give a report folder")
    return runs[-1 - back] / RESULT_FILE


def _latest_runbook(root: Path, spec: str) -> str:
    """The runbook of the run `<root>/latest` points at."""
    link = root / LATEST
    try:
        return str(json.loads((link / RESULT_FILE).read_text())["runbook"]["name"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{spec}: no readable {link}/{RESULT_FILE}",
                         hint="run a runbook without -o first, or give a report folder"
                         ) from e


def runs_of(root: Path, runbook: str) -> list[Path]:
    """The complete report folders of `runbook` in `root`, oldest first."""
    pattern = re.compile(re.escape(runbook) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?")
    found = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m and (entry / RESULT_FILE).is_file():
            found.append((m.group(1), int(m.group(2) or 1), entry))
    return [path for *_, path in sorted(found)]


def load_run(path: Path) -> RunResult:
    """A result.json read and checked; UsageError (exit 2) when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read it as JSON: {e}") from e
    try:
        return RunResult.from_json(doc)
    except ResultFormatError as e:
        raise UsageError(f"{path}: not a bpfrun result: {e.message}") from e


def source_name(path: Path) -> str:
    """How a run is named in a comparison: its report folder, or the file itself."""
    return str(path.parent if path.name == RESULT_FILE else path)


def folded_stacks(path: Path, run: RunResult) -> dict[str, dict[str, int]]:
    """The folded files next to a result.json, "<step>.<aggregation>" → stacks: every stack
    the run saw, where result.json keeps only the top rows. Missing or unreadable files are
    left out (the rows are folded instead)."""
    out: dict[str, dict[str, int]] = {}
    for step in run.steps:
        for agg_id, agg in step.aggregations.items():
            if not is_stack_aggregation(agg):
                continue
            try:
                text = (path.parent / stack_files(step.id, agg_id, agg)[0]).read_text()
            except (OSError, UnicodeDecodeError):
                continue
            stacks: dict[str, int] = {}
            for line in text.splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] = stacks.get(stack, 0) + int(count)
            out[f"{step.id}.{agg_id}"] = stacks
    return out
