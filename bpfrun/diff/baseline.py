"""`run --baseline`: a finished run compared with an earlier one of the same runbook.

The comparison goes into result.json (`baseline`, bpfrun.diff's JSON form) and at the end of
the run's report; the runbook's regression gates are judged on the pair, and a gate that
fires is a finding (of the pseudo-step `regressions`) with the same exit code as a threshold,
so a canary or CI job fails on a regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bpfrun.diff.compare import compare_runs
from bpfrun.diff.document import diff_blocks
from bpfrun.diff.model import RunDiff
from bpfrun.diff.regressions import judge_regressions
from bpfrun.errors import EXIT_FIRED
from bpfrun.frontend.model import Runbook
from bpfrun.report.blocks import Block, Section
from bpfrun.result import Finding, RunResult

REGRESSIONS_STEP = "regressions"


def with_baseline(run: RunResult, baseline: RunResult, runbook: Runbook,
                  params: Mapping[str, Any], source: str) -> tuple[RunResult, RunDiff]:
    """`run` with its comparison against `baseline` and the runbook's gates judged; stacks
    are folded from the rows both results kept, so the two sides are cut alike."""
    diff = compare_runs(baseline, run, source, "this run")
    diff = replace(diff, regressions=judge_regressions(runbook.regressions, baseline, run,
                                                       params))
    fired = tuple(Finding(REGRESSIONS_STEP, gid, g.severity, g.message, g.message_markdown)
                  for gid, g in diff.regressions.items() if g.fired)
    status, exit_code = run.status, run.exit_code
    if fired and status == "clean":
        status, exit_code = "fired", EXIT_FIRED
    return replace(run, findings=run.findings + fired, status=status, exit_code=exit_code,
                   baseline=diff.to_json()), diff


def baseline_section(diff: RunDiff) -> list[Block]:
    """What ends a run's report: the comparison, under one heading."""
    return [Section(2, ("Compared with the baseline",), tuple(diff_blocks(diff, level=3)),
                    "baseline")]
