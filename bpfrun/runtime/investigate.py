"""Run a whole runbook: steps in order, each compiled with what the earlier ones found.

A step whose `when` is false, or that needs a null value, is skipped with a reason a reader
understands. A failing step ends the run but keeps everything collected so far; Ctrl-C and
SIGTERM stop the current step and skip the rest. The outcome is one result document.
"""

from __future__ import annotations

import contextlib
import platform
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bpfrun import __version__
from bpfrun.compile.pipeline import AGG_STATS, NullInput, compile_step, names_for, substitute
from bpfrun.errors import (
    EXIT_CLEAN,
    EXIT_FIRED,
    EXIT_MACHINE,
    EXIT_STEP_FAILED,
    BpfrunError,
    MachineError,
    StepError,
)
from bpfrun.expr.evaluate import EvalError, Evaluator, render_template
from bpfrun.expr.nodes import Attr, Name, dotted
from bpfrun.expr.parser import walk
from bpfrun.frontend.model import Runbook, Step
from bpfrun.frontend.params import display as param_display
from bpfrun.kernel.tracefs import Kernel
from bpfrun.runtime.collect import AggView, EventsView, agg_json, build_view, events_json
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

    def run(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "runbook": {"name": self.runbook.name, "path": self.runbook.path,
                        "title": self.runbook.title, "description": self.runbook.description},
            "host": {"hostname": socket.gethostname(), "kernel": platform.release()},
            "bpfrun_version": __version__,
            "started": _now(), "finished": None,
            "params": {k: param_display(v) for k, v in self.params.items()},
            "status": "clean", "exit_code": EXIT_CLEAN, "findings": [], "steps": [],
            "error": None, "interrupted": False,
        }
        for step in self.runbook.steps:
            if self.outcome is not None or self.stop.is_set():
                reason = "interrupted" if self.stop.is_set() else "an earlier step failed"
                self.progress.step_done(step.id, "skipped", 0.0, reason)
                result["steps"].append(_skipped(step, reason))
                continue
            entry = self.run_step(step)
            result["steps"].append(entry)
            for tid, t in entry.get("thresholds", {}).items():
                if t["fired"]:
                    result["findings"].append({"step": step.id, "threshold": tid,
                                               "severity": t["severity"],
                                               "message": t["message"]})
        self.finish(result)
        return result

    def finish(self, result: dict[str, Any]) -> None:
        result["finished"] = _now()
        result["interrupted"] = self.stop.is_set()
        if self.outcome is not None:
            result["status"] = "failed"
            result["exit_code"] = self.outcome.exit_code
            result["error"] = self.outcome.message
        elif result["findings"]:
            result["status"], result["exit_code"] = "fired", EXIT_FIRED
        if self.stop.is_set() and result["error"] is None:
            result["error"] = "interrupted (Ctrl-C or SIGTERM): results cover the time until then"

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

    def run_step(self, step: Step) -> dict[str, Any]:
        reason = self.skip_reason(step)
        if reason:
            self.progress.step_done(step.id, "skipped", 0.0, reason)
            self.step_values[step.id] = {}
            return _skipped(step, reason)
        entry = _skipped(step, None)
        entry["status"] = "ran"
        try:
            compiled = compile_step(self.runbook, step, self.params, self.step_values,
                                    self.kernel)
        except NullInput as e:
            self.step_values[step.id] = {}
            why = f"needs {e.name}, which is null: the earlier step found no data"
            self.progress.step_done(step.id, "skipped", 0.0, why)
            return _skipped(step, why)
        except BpfrunError as e:
            return self.failed(step, entry, e)
        self.programs[step.id] = compiled.c_text
        prog = compiled.program
        entry["program"] = f"{step.id}.c"
        entry["probes"] = [a.probe for a in prog.attaches]
        entry["fallbacks"] = {a.requested: a.probe for a in prog.attaches
                              if a.requested != a.probe}
        entry["predicates"] = dict(prog.predicates)
        try:
            seconds = self.seconds(step)
            self.progress.step_started(step.id, step.title)
            raw = StepRunner(prog, compiled.c_text, seconds, self.stop,
                             lambda: self.progress.attached(step.id, len(prog.attaches), seconds),
                             self.progress.tick).run()
        except BpfrunError as e:
            return self.failed(step, entry, e)
        except Exception as e:  # BCC errors are untyped; never lose the report over one
            return self.failed(step, entry, StepError(f"{type(e).__name__}: {e}"))
        self.progress.step_done(step.id, "interrupted" if raw.interrupted else "ran", raw.seconds)
        self.collect(step, entry, raw)
        return entry

    def failed(self, step: Step, entry: dict[str, Any], e: BpfrunError) -> dict[str, Any]:
        self.outcome = e if isinstance(e, MachineError) else _as_step_failure(e)
        self.progress.step_done(step.id, "failed", 0.0, e.message)
        entry["status"] = "failed"
        entry["reason"] = e.message + (f" (hint: {e.hint})" if e.hint else "")
        self.step_values[step.id] = {}
        return entry

    def collect(self, step: Step, entry: dict[str, Any], raw: RawStep) -> None:
        entry["seconds"] = round(raw.seconds, 3)
        entry["compile_seconds"] = round(raw.compile_seconds, 3)
        views: dict[str, Any] = {}
        for agg in raw.aggs:
            view = build_view(agg)
            views[agg.plan.id] = view
            entry["aggregations"][agg.plan.id] = agg_json(view)
        for ev in raw.events:
            views[ev.plan.id] = EventsView(ev)
            entry["events"].append(events_json(ev))
        if raw.series:
            entry["series"] = _deltas(raw.series)
        entry["lost"] = {"events": raw.lost.get("events", 0), "stacks": raw.lost.get("stacks", 0),
                         "unpaired": raw.lost.get("unpaired", 0),
                         "map_full": raw.lost.get("map_full", 0) + raw.lost.get("pending_full", 0)}
        local = {**self.names(), "elapsed": Duration(round(raw.seconds * 1e9)), **views}
        captures: dict[str, Any] = {}
        for name, expr in step.captures:
            try:
                captures[name] = Evaluator(local).eval(expr.node)
            except EvalError as e:
                captures[name] = None
                entry.setdefault("notes", []).append(f"capture {name}: {e}")
        local.update(captures)
        values: dict[str, Any] = dict(captures)
        for t in step.thresholds:
            evaluator = Evaluator(local)
            try:
                fired: bool | None = evaluator.truth(t.when.node)
            except EvalError as e:
                fired = None
                entry.setdefault("notes", []).append(f"threshold {t.id}: {e}")
            if not fired and evaluator.null_seen:
                fired = None  # no data, which is not the same as fine
            try:
                message = render_template(t.message.parts, local) if t.message else t.when.text
            except EvalError as e:
                message = f"{t.when.text} (message failed: {e})"
            entry["thresholds"][t.id] = {"fired": fired, "severity": t.severity,
                                         "message": message, "when": t.when.text}
            values[t.id] = bool(fired)
            values[f"__why.{t.id}"] = ("no data" if fired is None else message)
        for agg_id, view in views.items():
            if isinstance(view, AggView) and not view.plan.keys:
                for stat in AGG_STATS:
                    with contextlib.suppress(KeyError):
                        values[f"{agg_id}.{stat}"] = view.field(stat)
            values[agg_id] = view
        entry["captures"] = {k: jsonable(v) for k, v in captures.items()}
        self.step_values[step.id] = values


def _deltas(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Running totals at each tick → what each interval added (events per interval)."""
    points: list[dict[str, Any]] = []
    last: dict[str, int] = {}
    for snap in series:
        point = {"t": snap["t"]}
        for k, v in snap.items():
            if k != "t":
                point[k] = v - last.get(k, 0)
                last[k] = v
        points.append(point)
    return {"points": points}


def _skipped(step: Step, reason: str | None) -> dict[str, Any]:
    return {"id": step.id, "title": step.title, "why": step.why,
            "status": "skipped", "reason": reason, "seconds": 0.0, "compile_seconds": 0.0,
            "program": None, "probes": [], "fallbacks": {}, "predicates": {},
            "aggregations": {}, "events": [], "thresholds": {}, "captures": {},
            "lost": {"events": 0, "stacks": 0, "unpaired": 0, "map_full": 0}}


def _as_step_failure(e: BpfrunError) -> BpfrunError:
    if e.exit_code in (EXIT_MACHINE, EXIT_STEP_FAILED):
        return e
    failure = BpfrunError(e.message, e.hint)
    failure.exit_code = EXIT_STEP_FAILED
    return failure


