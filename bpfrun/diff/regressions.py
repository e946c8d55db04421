"""A runbook's regression gates, judged on a run and its baseline.

A gate is written like a threshold, over the names of both runs: `runq.dist.p99` (step,
aggregation, field), `runq.slow` (a threshold: fired or not), `runq.culprit` (a capture),
the same under `baseline.`, and `params`. Measured values are read from result.json and
typed again (durations and sizes in the aggregation's unit become Duration and Size), so
`runq.dist.p99 > baseline.runq.dist.p99 * 3 / 2` and `runq.dist.p99 > 5ms` both compare
like with like. A gate with no data to decide is None, as a threshold's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bpfrun.expr.evaluate import EvalError, Evaluator, render_template
from bpfrun.frontend.model import Threshold
from bpfrun.report.flamegraph import row_weight
from bpfrun.report.markdown import md_template_value
from bpfrun.result import AggregationResult, RunResult, StatsValue, ThresholdResult
from bpfrun.units import HIST_UNITS, Duration, Size

DURATION_UNITS = frozenset({"ns", "us", "ms", "s"})
SIZE_UNITS = frozenset({"bytes", "KiB", "MiB"})
KEYLESS_FIELDS = ("count", "sum", "min", "max", "avg", "p50", "p90", "p99")


def typed(value: Any, unit: str | None) -> Any:
    """A result.json number in `unit` as the expression language's value."""
    if not isinstance(value, int | float) or isinstance(value, bool) or unit is None:
        return value
    if unit in DURATION_UNITS:
        return Duration(round(value * HIST_UNITS[unit]))
    if unit in SIZE_UNITS:
        return Size(round(value * HIST_UNITS[unit]))
    return value


def aggregation_names(agg: AggregationResult) -> dict[str, Any]:
    """What `<step>.<aggregation>.<field>` reads of a saved aggregation."""
    weights = [row_weight(r.value) for r in agg.rows]
    total = float(sum(weights))
    names: dict[str, Any] = {"rows": agg.total_rows,
                             "total": typed(int(total) if total.is_integer() else total,
                                            agg.unit if agg.kind != "count" else None)}
    if agg.keys:
        if agg.kind == "count":
            names["count"] = names["total"]
        return names
    value = agg.rows[0].value if agg.rows else None
    if isinstance(value, StatsValue):
        for name in KEYLESS_FIELDS:
            try:
                stat = value.stat(name)
            except KeyError:
                continue
            names[name] = stat if name == "count" else typed(stat, agg.unit)
        names["value"] = names.get("avg")
    else:
        names["value"] = typed(value, agg.unit if agg.kind != "count" else None)
        names["count"] = value if agg.kind == "count" else None
    return names


def run_names(run: RunResult) -> dict[str, Any]:
    """Every step of `run` by id: its aggregations, thresholds (fired or not) and captures."""
    out: dict[str, Any] = {}
    for step in run.steps:
        names: dict[str, Any] = {k: aggregation_names(a) for k, a in step.aggregations.items()}
        names.update({k: t.fired for k, t in step.thresholds.items()})
        names.update(dict(step.captures))
        out[step.id] = names
    return out


def judge_regressions(gates: tuple[Threshold, ...], before: RunResult, after: RunResult,
                      params: Mapping[str, Any]) -> dict[str, ThresholdResult]:
    """Each gate's outcome on AFTER against BEFORE (the baseline)."""
    names = {**run_names(after), "baseline": run_names(before), "params": dict(params)}
    return {gate.id: _judge(gate, names) for gate in gates}


def _judge(gate: Threshold, names: dict[str, Any]) -> ThresholdResult:
    evaluator = Evaluator(names)
    message: str = gate.when.text
    markdown: str | None = None
    try:
        fired: bool | None = evaluator.truth(gate.when.node)
    except EvalError as e:
        fired, message = None, f"{gate.when.text}: {e}"
    if not fired and evaluator.null_seen:
        fired = None
    if gate.message is not None and fired is not None:
        try:
            message = render_template(gate.message.parts, names)
            markdown = render_template(gate.message.parts, names, quote=md_template_value)
        except EvalError as e:
            message = f"{gate.when.text} (message failed: {e})"
    return ThresholdResult(fired, gate.severity, message, gate.when.text, markdown)
