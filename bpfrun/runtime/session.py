"""One `bpfrun run`, from the command line's options to the written reports.

Everything that can refuse a run does so before anything is loaded into the kernel: the
report formats and mode, the policy and its overhead ceiling, the params, the target, the
machine, the kernel checks of every step, the step durations, the runbook file unchanged
since it was checked, a writable output folder, the per-runbook lock and the free-space
floor, the baseline. Then the investigation runs with Ctrl-C/SIGTERM stopping it (a whole,
`interrupted` report is still written), and the reports, the retention and the metrics
follow. The CLI only turns options into a `RunRequest` and prints the `RunOutcome`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bpfrun.compile.pipeline import check_against_kernel
from bpfrun.compile.policy_check import check_runbook_policy
from bpfrun.compile.program import CgroupFilter
from bpfrun.diff.baseline import baseline_section, with_baseline
from bpfrun.diff.locate import load_run, resolve_run, source_name
from bpfrun.errors import UsageError, ValidationError
from bpfrun.frontend.durations import step_duration_problems
from bpfrun.frontend.model import Runbook
from bpfrun.frontend.params import parse_assignments, resolve_params, target_param
from bpfrun.frontend.policy import check_unchanged, find_policy, is_scheduled
from bpfrun.frontend.runbooks import find_runbook, load_runbook
from bpfrun.kernel.cgroups import resolve_target
from bpfrun.kernel.tracefs import Kernel, default_kernel
from bpfrun.ops.runops import RunOps
from bpfrun.report.reportdir import default_report_dir, prepare_folder
from bpfrun.report.writers import parse_formats, parse_mode, write_outputs
from bpfrun.result import RunResult
from bpfrun.runtime.doctor import require_runnable
from bpfrun.runtime.investigate import Investigation
from bpfrun.runtime.overhead import run_budget
from bpfrun.runtime.progress import Progress
from bpfrun.units import Duration, parse_duration


@dataclass(frozen=True)
class TargetOptions:
    """--cgroup/--unit/--container/--pod as given (at most one)."""

    cgroup: str | None = None
    unit: str | None = None
    container: str | None = None
    pod: str | None = None


@dataclass(frozen=True)
class RunRequest:
    runbook: str  # a path or a shipped runbook's name
    params: list[str] = field(default_factory=list)  # NAME=VALUE
    duration: str | None = None
    out: Path | None = None
    formats: str = "md,html,json"
    policy: str | None = None
    keep: int | None = None
    keep_days: str | None = None
    min_free: str = "256MiB"
    prom_textfile: Path | None = None
    report_mode: str = "0600"
    baseline: str | None = None
    max_overhead: float | None = None
    target: TargetOptions = field(default_factory=TargetOptions)


@dataclass
class RunOutcome:
    result: RunResult
    written: dict[str, Path]  # format → file


@dataclass
class _Prepared:
    rb: Runbook
    params: dict[str, Any]
    kernel: Kernel
    override: Duration | None
    budget: Any
    target: CgroupFilter | None
    explanation: Any
    ops: RunOps
    before: tuple[RunResult, str] | None


def load(runbook: str) -> Runbook:
    return load_runbook(find_runbook(runbook))


def cgroup_target(options: TargetOptions, rb: Runbook | None = None,
                  params: dict[str, Any] | None = None) -> CgroupFilter | None:
    """The cgroup filter the options name (at most one), else the one the runbook's target
    param (type cgroup/unit/container/pod) names, or None."""
    given = [(k, v) for k, v in (("cgroup", options.cgroup), ("unit", options.unit),
                                 ("container", options.container), ("pod", options.pod))
             if v is not None]
    default = target_param(rb, params or {}) if rb is not None else None
    if not given and default is not None:
        given = [default]
    if not given:
        return None
    if len(given) > 1:
        raise UsageError("give one of --cgroup, --unit, --container, --pod",
                         "a pod covers its containers; a slice covers its units")
    t = resolve_target(*given[0])
    return CgroupFilter(t.id, t.level, t.label, t.kind, t.asked, t.path, t.exact)


def baseline_run(spec: str, runbook: str) -> tuple[RunResult, str]:
    """The baseline run `spec` names (latest: this runbook's newest) and its source."""
    path = resolve_run(spec, runbook)
    run = load_run(path)
    if run.runbook.name != runbook:
        raise UsageError(f"--baseline {spec}: a run of {run.runbook.name}, not of {runbook}",
                         hint=f"give a run of {runbook}, e.g. latest")
    return run, source_name(path)


def _override(duration: str | None) -> Duration | None:
    if duration is None:
        return None
    try:
        return Duration(parse_duration(duration))
    except ValueError as e:
        raise UsageError(f"--duration: {e}") from None


def _prepare(req: RunRequest, mode: int) -> _Prepared:
    """Every check that can refuse the run, before anything is loaded into the kernel."""
    rules = find_policy(req.policy)
    budget = run_budget(req.max_overhead, rules.max_overhead, rules.rule("max_overhead"))
    rb = load(req.runbook)
    params = resolve_params(rb, parse_assignments(req.params))
    target = cgroup_target(req.target, rb, params)
    override = _override(req.duration)
    require_runnable()
    kernel = default_kernel()
    check_against_kernel(rb, params, kernel, strict=True)
    late = step_duration_problems(rb, params, {s.id for s in rb.steps})
    if late:  # e.g. --param duration=0s: refused now, not after the first steps ran
        raise ValidationError(diagnostics=late, sources={rb.path: rb.source})
    explanation = check_runbook_policy(rules, rb, params, kernel,
                                       override.ns if override is not None else None,
                                       scheduled=is_scheduled())
    check_unchanged(rb)  # the text checked is the text run
    if req.out is not None:  # a read-only -o fails now, not after the measurement
        prepare_folder(req.out, mode)
    ops = RunOps(rb.name, req.out, req.keep, req.keep_days, req.min_free,
                 req.prom_textfile).start()
    before = baseline_run(req.baseline, rb.name) if req.baseline is not None else None
    return _Prepared(rb, params, kernel, override, budget, target, explanation, ops, before)


def run_session(req: RunRequest, progress: Progress,
                warn: Callable[[str], None]) -> RunOutcome:
    """Check, run and report one runbook. Raises BpfrunError for a refused run (nothing was
    loaded); a run that failed halfway is a RunOutcome whose result says so."""
    formats = parse_formats(req.formats)  # a typo exits 2 at once
    mode = parse_mode(req.report_mode)
    prep = _prepare(req, mode)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    inv = Investigation(prep.rb, prep.params, prep.kernel, prep.override, stop, progress,
                        max_overhead=prep.budget, target=prep.target)
    try:
        result = inv.run()
    finally:
        progress.close()  # take the live line down even on Ctrl-C or a bug
    appendix: list[Any] = []
    if prep.before is not None:
        result, compared = with_baseline(result, prep.before[0], prep.rb, prep.params,
                                         prep.before[1])
        appendix = baseline_section(compared)
        for warning in compared.warnings:
            warn(f"warning: baseline: {warning}")
    folder = req.out or default_report_dir(prep.rb.name, datetime.fromisoformat(result.started),
                                           mode=mode)
    written = write_outputs(folder, result, inv.programs, {}, formats, latest=req.out is None,
                            explanation=prep.explanation, mode=mode, appendix=appendix)
    prep.ops.finish(result, folder)
    return RunOutcome(result, written)
