"""Run a whole runbook: steps in order, each compiled with what the earlier ones found.

A step whose `when` is false, or that needs a null value, is skipped with a reason a reader
understands. A failing step ends the run but keeps everything collected so far; Ctrl-C and
SIGTERM stop the current step and skip the rest. The outcome is one `RunResult`.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from bpfrun import __version__
from bpfrun.compile.pipeline import AGG_STATS, NullInput, compile_step, names_for, substitute
from bpfrun.compile.program import CgroupFilter
from bpfrun.errors import (
    EXIT_CLEAN,
    EXIT_FIRED,
    EXIT_MACHINE,
    EXIT_STEP_FAILED,
    BpfrunError,
    MachineError,
    StepError,
)
from bpfrun.expr.evaluate import CGROUP_NAMES, EvalError, Evaluator, render_template
from bpfrun.expr.nodes import Attr, Name, dotted
from bpfrun.expr.parser import walk
from bpfrun.frontend.model import Runbook, Step, Threshold
from bpfrun.frontend.params import display as param_display
from bpfrun.kernel.cgroups import CgroupNames
from bpfrun.kernel.tracefs import Kernel
from bpfrun.report.markdown import md_template_value
from bpfrun.result import (
    AggregationResult,
    Finding,
    Host,
    LostCounts,
    Overhead,
    RunbookInfo,
    RunResult,
    RunStatus,
    SeriesPoint,
    StepResult,
    ThresholdResult,
)
from bpfrun.runtime.cgroupnames import keys_cgroups, named_host, target_gone
from bpfrun.runtime.collect import AggView, EventsView, agg_result, build_view, events_result
from bpfrun.runtime.overhead import DEFAULT_BUDGET, budget_message
from bpfrun.runtime.progress import Progress
from bpfrun.runtime.runner import RawStep, StepRunner
from bpfrun.units import Duration, Size, parse_duration


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jsonable(value: Any) -> Any:
    """Typed values as they appear in result.json (durations and sizes as display strings)."""
    if isinstance(value, (Duration, Size)):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass
class Investigation:
    runbook: Runbook
    params: dict[str, Any]
    kernel: Kernel
    duration_override: Duration | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=lambda: Progress(quiet=True))
    programs: dict[str, str] = field(default_factory=dict)  # step id → C text
    step_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome: BpfrunError | None = None
    max_overhead: float | None = DEFAULT_BUDGET  # percent of all CPUs; None or 0: no limit
    budget_findings: dict[str, str] = field(default_factory=dict)  # step id → its finding
    target: CgroupFilter | None = None  # --cgroup/--unit/--container/--pod: only its tasks
    cgroup_names: CgroupNames | None = None  # a step keys by cgroup: names taken in the run
    target_gone: dict[str, str] = field(default_factory=dict)  # step id → its finding

    def run(self) -> RunResult:
        started = _now()
        steps: list[StepResult] = []
        for step in self.runbook.steps:
            if self.outcome is not None or self.stop.is_set():
                reason = "interrupted" if self.stop.is_set() else "an earlier step failed"
                self.progress.step_done(step.id, "skipped", 0.0, reason)
                steps.append(_skipped(step, reason))
                continue
            steps.append(self.run_step(step))
        return self.finish(started, steps)

    def finish(self, started: str, steps: list[StepResult]) -> RunResult:
        findings = tuple(
            f for s in steps
            for f in (*(Finding(s.id, tid, t.severity, t.message, t.message_markdown)
                        for tid, t in s.thresholds.items() if t.fired),
                      *([Finding(s.id, "overhead_budget", "warning",
                                 self.budget_findings[s.id])]
                        if s.id in self.budget_findings else []),
                      *([Finding(s.id, "target_gone", "warning", self.target_gone[s.id])]
                        if s.id in self.target_gone else [])))
        status: RunStatus = "clean"
        exit_code, error = EXIT_CLEAN, None
        if self.outcome is not None:
            status, exit_code, error = "failed", self.outcome.exit_code, self.outcome.message
        elif findings:
            status, exit_code = "fired", EXIT_FIRED
        if self.stop.is_set() and error is None:
            error = "interrupted (Ctrl-C or SIGTERM): results cover the time until then"
        rb = self.runbook
        return RunResult(
            RunbookInfo(rb.name, rb.path, rb.title, rb.description),
            named_host(Host(socket.gethostname(), platform.release()), steps,
                       self.cgroup_names, self.target), __version__, started, _now(),
            {k: param_display(v) for k, v in self.params.items()}, status, exit_code,
            findings, tuple(steps), error, self.stop.is_set())

    def names(self) -> dict[str, Any]:
        return names_for(self.params, self.step_values)

    def seconds(self, step: Step) -> float:
        if self.duration_override is not None:
            return self.duration_override.ns / 1e9
        return parse_duration(substitute(step.duration, self.names(), self.runbook)) / 1e9

    def skip_reason(self, step: Step) -> str | None:
        if step.when is None:
            return None
        ev = Evaluator(self.names())
        try:
            if ev.truth(step.when.node):
                return None
        except EvalError as e:
            return f"`when` could not be evaluated: {e}"
        reasons = [f"{step.when.text} is false"]
        for node in walk(step.when.node):
            path = dotted(node) if isinstance(node, (Attr, Name)) else None
            parts = path.split(".") if path else []
            if len(parts) == 3 and parts[0] == "steps":
                detail = self.step_values.get(parts[1], {}).get(f"__why.{parts[2]}")
                if detail:
                    reasons.append(f"steps.{parts[1]}.{parts[2]} did not fire: {detail}")
        if ev.null_seen:
            reasons.append("no data for " + ", ".join(sorted(set(ev.null_seen))))
        return "; ".join(dict.fromkeys(reasons))

    def run_step(self, step: Step) -> StepResult:
        reason = self.skip_reason(step)
        if reason:
            self.progress.step_done(step.id, "skipped", 0.0, reason)
            self.step_values[step.id] = {}
            return _skipped(step, reason)
        entry = replace(_skipped(step, None), status="ran")
        try:
            compiled = compile_step(self.runbook, step, self.params, self.step_values,
                                    self.kernel, target=self.target)
        except NullInput as e:
            self.step_values[step.id] = {}
            why = f"needs {e.name}, which is null: the earlier step found no data"
            self.progress.step_done(step.id, "skipped", 0.0, why)
            return _skipped(step, why)
        except BpfrunError as e:
            return self.failed(step, entry, e)
        self.programs[step.id] = compiled.c_text
        prog = compiled.program
        entry = replace(entry, program=f"{step.id}.c",
                        probes=tuple(a.probe for a in prog.attaches),
                        fallbacks={a.requested: a.probe for a in prog.attaches
                                   if a.requested != a.probe},
                        predicates=dict(prog.predicates))
        try:
            seconds = self.seconds(step)
            self.progress.step_started(step.id, step.title)
            raw = StepRunner(prog, compiled.c_text, seconds, self.stop,
                             lambda: self.progress.attached(step.id, len(prog.attaches), seconds),
                             self.progress.tick, self.max_overhead).run()
            if keys_cgroups(prog):  # names now, while the step's cgroups still exist
                self.cgroup_names = self.cgroup_names or CgroupNames()
                self.cgroup_names.refresh()
            gone = None if self.target_gone else target_gone(self.target, step.id)
            if gone:  # reported once: partial data, like a step stopped over budget
                self.target_gone[step.id] = gone
        except BpfrunError as e:
            return self.failed(step, entry, e)
        except Exception as e:  # BCC errors are untyped; never lose the report over one
            return self.failed(step, entry, StepError(f"{type(e).__name__}: {e}"))
        self.progress.step_done(step.id, "interrupted" if raw.interrupted else "ran", raw.seconds,
                                "stopped: over the overhead budget" if raw.over_budget else None)
        return self.collect(step, entry, raw)

    def failed(self, step: Step, entry: StepResult, e: BpfrunError) -> StepResult:
        self.outcome = e if isinstance(e, MachineError) else _as_step_failure(e)
        self.progress.step_done(step.id, "failed", 0.0, e.message)
        self.step_values[step.id] = {}
        return replace(entry, status="failed",
                       reason=e.message + (f" (hint: {e.hint})" if e.hint else ""))

    def collect(self, step: Step, entry: StepResult, raw: RawStep) -> StepResult:
        """What the step found, and the values later steps and expressions read from it."""
        views: dict[str, Any] = {}
        aggregations: dict[str, AggregationResult] = {}
        for agg in raw.aggs:
            view = build_view(agg)
            views[agg.plan.id] = view
            aggregations[agg.plan.id] = agg_result(view)
        for ev in raw.events:
            views[ev.plan.id] = EventsView(ev)
        notes = [f"aggregation {agg.plan.id}: sampled 1 in {agg.plan.sample}; counts scaled"
                 for agg in raw.aggs if agg.plan.sample > 1]
        series = [p.to_json() for p in _deltas(raw.series)]  # trend(series, ...) reads it
        local = {**self.names(), "elapsed": Duration(round(raw.seconds * 1e9)),
                 "series": series, **views}
        if self.cgroup_names is not None:  # for cgroup_name() in captures and messages
            local[CGROUP_NAMES] = self.cgroup_names.name
        captures: dict[str, Any] = {}
        for name, expr in step.captures:
            try:
                captures[name] = Evaluator(local).eval(expr.node)
            except EvalError as e:
                captures[name] = None
                notes.append(f"capture {name}: {e}")
        local.update(captures)
        values: dict[str, Any] = dict(captures)
        thresholds = {t.id: _judge(t, local, values, notes) for t in step.thresholds}
        for agg_id, view in views.items():
            if isinstance(view, AggView) and not view.plan.keys:
                for stat in AGG_STATS:
                    with contextlib.suppress(KeyError):
                        values[f"{agg_id}.{stat}"] = view.field(stat)
            values[agg_id] = view
        self.step_values[step.id] = values
        return replace(
            entry, seconds=round(raw.seconds, 3), compile_seconds=round(raw.compile_seconds, 3),
            aggregations=aggregations, events=tuple(events_result(ev) for ev in raw.events),
            thresholds=thresholds, captures={k: jsonable(v) for k, v in captures.items()},
            lost=_lost(raw.lost), series=_deltas(raw.series), notes=tuple(notes),
            symbols=raw.symbols, overhead=self._overhead(step, raw))

    def _overhead(self, step: Step, raw: RawStep) -> Overhead | None:
        """The step's measured cost; a step the budget stopped also gets its finding."""
        if raw.overhead is None:
            return None
        if raw.over_budget is not None and raw.budget:
            self.budget_findings[step.id] = budget_message(
                step.id, raw.overhead, raw.over_budget, raw.budget, raw.seconds)
        o = raw.overhead
        timed = None if o.timed is None or o.seconds <= 0 or o.timed >= o.seconds else \
            round(100 * o.timed / o.seconds, 1)
        return Overhead(o.bpf_ns, o.events, round(o.cpu_percent, 3), raw.budget,
                        raw.over_budget is not None, timed)


def _judge(t: Threshold, local: dict[str, Any], values: dict[str, Any],
           notes: list[str]) -> ThresholdResult:
    """Whether a threshold fired (None: no data, which is not the same as fine); records the
    outcome in `values` for later steps' `when`."""
    evaluator = Evaluator(local)
    try:
        fired: bool | None = evaluator.truth(t.when.node)
    except EvalError as e:
        fired = None
        notes.append(f"threshold {t.id}: {e}")
    if not fired and evaluator.null_seen:
        fired = None
    markdown: str | None = None
    try:
        message = render_template(t.message.parts, local) if t.message else t.when.text
        if t.message:
            markdown = render_template(t.message.parts, local, quote=md_template_value)
    except EvalError as e:
        message = f"{t.when.text} (message failed: {e})"
    values[t.id] = bool(fired)
    values[f"__why.{t.id}"] = ("no data" if fired is None else message)
    return ThresholdResult(fired, t.severity, message, t.when.text, markdown)


def _lost(lost: dict[str, int]) -> LostCounts:
    return LostCounts(lost.get("events", 0), lost.get("stacks", 0), lost.get("unpaired", 0),
                      lost.get("map_full", 0) + lost.get("pending_full", 0))


def _deltas(series: list[dict[str, Any]]) -> tuple[SeriesPoint, ...]:
    """Running totals at each tick → what each interval added (events per interval)."""
    points: list[SeriesPoint] = []
    last: dict[str, int] = {}
    for snap in series:
        added: dict[str, int] = {}
        for k, v in snap.items():
            if k != "t":
                added[k] = v - last.get(k, 0)
                last[k] = v
        points.append(SeriesPoint(snap["t"], added))
    return tuple(points)


def _skipped(step: Step, reason: str | None) -> StepResult:
    return StepResult(step.id, step.title, step.why, "skipped", reason)


def _as_step_failure(e: BpfrunError) -> BpfrunError:
    if e.exit_code in (EXIT_MACHINE, EXIT_STEP_FAILED):
        return e
    failure = BpfrunError(e.message, e.hint)
    failure.exit_code = EXIT_STEP_FAILED
    return failure


