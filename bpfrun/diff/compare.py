"""Compare two runs of one runbook (`RunResult`s) into a `RunDiff`.

Runs of different runbooks are refused (a UsageError, exit 2): their steps mean different
things. Runs that differ in kernel, host, params or durations are compared with a warning,
since that is often the point (a kernel upgrade, a new setting) but changes what a number
means. Keyed counts and sums are compared per second when a step measured for a different
time in the two runs; percentiles never are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeAlias

from bpfrun.diff.model import (
    AggregationDiff,
    BucketCounts,
    HistChange,
    OutcomeChange,
    RowChange,
    RunDiff,
    RunRef,
    StatChange,
    factor_of,
)
from bpfrun.errors import UsageError
from bpfrun.report.flamegraph import is_stack_aggregation, row_weight, stacks_for
from bpfrun.result import AggregationResult, HistValue, RunResult, StepResult

HIST_STATS = ("p50", "p90", "p99", "max", "count")
RATE_KINDS = frozenset({"count", "sum"})
DURATION_SLACK = 0.05  # steps whose times differ by less are compared as they are
VANISHED_SCORE = 10.0  # a histogram that emptied or filled up outranks any factor


Folded: TypeAlias = Mapping[str, Mapping[str, int]]  # "<step>.<aggregation>" → stacks


def compare_runs(before: RunResult, after: RunResult, before_source: str = "",
                 after_source: str = "", folded: tuple[Folded, Folded] = ({}, {})) -> RunDiff:
    """BEFORE and AFTER compared; UsageError when they are runs of different runbooks.
    `folded`: each run's folded stacks where known (every stack, from the report folder's
    files); stack aggregations not in them are folded from the rows result.json kept."""
    if before.runbook.name != after.runbook.name:
        raise UsageError(
            f"cannot compare runs of different runbooks: {before.runbook.name} "
            f"({before_source or 'BEFORE'}) and {after.runbook.name} "
            f"({after_source or 'AFTER'})",
            hint="compare two runs of the same runbook, e.g. latest~1 and latest")
    outcomes: list[OutcomeChange] = []
    aggregations: list[AggregationDiff] = []
    for step_id in _step_ids(before, after):
        b, a = before.step(step_id), after.step(step_id)
        outcomes += _thresholds(step_id, b, a) + _captures(step_id, b, a)
        aggregations += _aggregations(step_id, b, a, folded)
    aggregations.sort(key=lambda d: -d.score)
    return RunDiff(after.runbook.name, _ref(before, before_source), _ref(after, after_source),
                   tuple(run_warnings(before, after)), tuple(outcomes), tuple(aggregations))


def _ref(run: RunResult, source: str) -> RunRef:
    return RunRef(source, run.runbook.name, run.started, run.finished, run.host.hostname,
                  run.host.kernel, dict(run.params), run.status)


def _step_ids(before: RunResult, after: RunResult) -> list[str]:
    ids = [s.id for s in after.steps]
    return ids + [s.id for s in before.steps if s.id not in ids]


def run_warnings(before: RunResult, after: RunResult) -> list[str]:
    """What differs between the two runs themselves, which a reader must know to trust the
    comparison."""
    out = []
    if before.host.kernel != after.host.kernel:
        out.append(f"kernels differ: {before.host.kernel} → {after.host.kernel}")
    if before.host.hostname != after.host.hostname:
        out.append(f"hosts differ: {before.host.hostname} → {after.host.hostname}")
    for name in sorted(set(before.params) | set(after.params)):
        old, new = before.params.get(name), after.params.get(name)
        if old != new:
            out.append(f"param {name} differs: {old!r} → {new!r}")
    for step in after.steps:
        old_step = before.step(step.id)
        if old_step is not None and _rate_scale(old_step, step) is not None:
            out.append(f"step {step.id} measured for {old_step.seconds:g}s, then "
                       f"{step.seconds:g}s: counts and sums are compared per second")
    return out


def _rate_scale(before: StepResult, after: StepResult) -> tuple[float, float] | None:
    """(1/before seconds, 1/after seconds) when the steps measured for different times."""
    b, a = before.seconds, after.seconds
    if b <= 0 or a <= 0 or abs(a - b) <= DURATION_SLACK * max(a, b):
        return None
    return 1 / b, 1 / a


def _thresholds(step_id: str, b: StepResult | None, a: StepResult | None) -> list[OutcomeChange]:
    out = []
    names = dict.fromkeys([*(a.thresholds if a else {}), *(b.thresholds if b else {})])
    for tid in names:
        old = b.thresholds[tid].fired if b and tid in b.thresholds else None
        new = a.thresholds[tid].fired if a and tid in a.thresholds else None
        where = f"{step_id}.{tid}"
        if old and not new:
            text = f"{where} no longer fires" + ("" if new is False else " (no data now)")
        elif new and not old:
            text = f"{where} fires now" + (" (it did not before)" if old is False else "")
        elif new:
            text = f"{where} still fires"
        else:
            text = f"{where} fires in neither run"
        outcome = OutcomeChange(step_id, tid, "threshold", old, new, text, bool(old) != bool(new))
        out.append(outcome)
    return out


def _captures(step_id: str, b: StepResult | None, a: StepResult | None) -> list[OutcomeChange]:
    out = []
    names = dict.fromkeys([*(a.captures if a else {}), *(b.captures if b else {})])
    for name in names:
        old = b.captures.get(name) if b else None
        new = a.captures.get(name) if a else None
        where = f"{step_id}.{name}"
        if old == new:
            text = f"{where} is {_shown(new)} in both runs"
        else:
            text = f"{where} was {_shown(old)}, now {_shown(new)}"
            gone = _vanished_from(old, b, a)
            if gone:
                text += f": {old} no longer appears in {', '.join(gone)}"
        out.append(OutcomeChange(step_id, name, "capture", old, new, text, old != new))
    return out


def _shown(value: Any) -> str:
    return "no data" if value is None else json.dumps(value, ensure_ascii=False) \
        if not isinstance(value, str) else value


def _vanished_from(value: Any, b: StepResult | None, a: StepResult | None) -> list[str]:
    """The aggregations of the step whose rows named `value` (a culprit's name) in BEFORE and
    no longer do in AFTER: "bpfr_hog no longer appears in runq.slow_by"."""
    if not isinstance(value, str) or not value or b is None:
        return []
    out = []
    for agg_id, agg in b.aggregations.items():
        after_agg = a.aggregations.get(agg_id) if a else None
        if _names(agg, value) and (after_agg is None or not _names(after_agg, value)):
            out.append(f"{b.id}.{agg_id}")
    return out


def _names(agg: AggregationResult, value: str) -> bool:
    return any(value == v for row in agg.rows for v in row.key.values())


def _aggregations(step_id: str, b: StepResult | None, a: StepResult | None,
                  folded: tuple[Folded, Folded]) -> list[AggregationDiff]:
    if b is None or a is None:
        return []  # a step that ran in one run only: its outcomes already say so
    scale = _rate_scale(b, a)
    out = []
    for agg_id, new in a.aggregations.items():
        old = b.aggregations.get(agg_id)
        if old is None or old.kind != new.kind:
            continue
        if is_stack_aggregation(new):
            stacks = (stacks_for(folded[0], step_id, agg_id, old),
                      stacks_for(folded[1], step_id, agg_id, new))
            out.append(_stacks(step_id, agg_id, new, stacks, scale))
        elif new.kind in ("hist", "lhist"):
            out.append(_histograms(step_id, agg_id, old, new))
        else:
            out.append(_rows(step_id, agg_id, old, new, scale))
    return out


def _key_id(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def _histograms(step_id: str, agg_id: str, old: AggregationResult,
                new: AggregationResult) -> AggregationDiff:
    olds = {_key_id(r.key): r for r in old.rows}
    news = {_key_id(r.key): r for r in new.rows}
    changes, score = [], 0.0
    for key in dict.fromkeys([*news, *olds]):
        row = news.get(key) or olds[key]
        b = olds[key].value if key in olds else None
        a = news[key].value if key in news else None
        change = hist_change(row.key, b if isinstance(b, HistValue) else None,
                             a if isinstance(a, HistValue) else None)
        changes.append(change)
        score = max(score, _hist_score(change))
    return AggregationDiff(step_id, agg_id, new.kind, new.keys, new.unit, False, score,
                           histograms=tuple(changes))


def hist_change(key: Mapping[str, Any], before: HistValue | None,
                after: HistValue | None) -> HistChange:
    """One histogram row in both runs: its statistics and its buckets, lowest first."""
    stats = tuple(StatChange(name, _stat(before, name), _stat(after, name))
                  for name in HIST_STATS)
    counts: dict[tuple[Any, Any], list[int]] = {}
    for side, value in enumerate((before, after)):
        for bucket in value.buckets if value else ():
            counts.setdefault((bucket.low, bucket.high), [0, 0])[side] += bucket.count
    ordered = sorted(counts.items(), key=lambda kv: (
        -math.inf if kv[0][0] is None else kv[0][0]))
    buckets = tuple(BucketCounts(low, high, c[0], c[1]) for (low, high), c in ordered
                    if c[0] or c[1])
    return HistChange(dict(key), stats, buckets)


def _stat(value: HistValue | None, name: str) -> Any:
    return value.stat(name) if value is not None else None


def _hist_score(change: HistChange) -> float:
    count = change.stat("count")
    if count is not None and bool(count.before) != bool(count.after):
        return VANISHED_SCORE
    factors = [s.factor for s in change.stats if s.name != "count"]
    return max((abs(math.log2(f)) for f in factors if f), default=0.0)


def _rows(step_id: str, agg_id: str, old: AggregationResult, new: AggregationResult,
          scale: tuple[float, float] | None) -> AggregationDiff:
    per_second = scale is not None and new.kind in RATE_KINDS
    sb, sa = scale if per_second and scale else (1.0, 1.0)
    olds = {_key_id(r.key): r for r in old.rows}
    news = {_key_id(r.key): r for r in new.rows}
    rows = []
    for key in dict.fromkeys([*news, *olds]):
        row = news.get(key) or olds[key]
        b = row_weight(olds[key].value) * sb if key in olds else None
        a = row_weight(news[key].value) * sa if key in news else None
        rows.append(RowChange(_row_label(row.key), dict(row.key), b, a))
    ranked = _ranked(rows)
    return AggregationDiff(step_id, agg_id, new.kind, new.keys, new.unit, per_second,
                           _rows_score(ranked), rows=tuple(ranked))


def _row_label(key: Mapping[str, Any]) -> str:
    parts = [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
             for v in key.values()]
    return ", ".join(p or '""' for p in parts) or "(all)"


def _ranked(rows: list[RowChange]) -> list[RowChange]:
    return sorted(rows, key=lambda r: (-abs(r.delta), r.label))


def _rows_score(rows: list[RowChange]) -> float:
    """The share of the total that moved: 0 unchanged, up to 2 when every row was replaced."""
    total = max(sum(r.before or 0 for r in rows), sum(r.after or 0 for r in rows))
    return sum(abs(r.delta) for r in rows) / total if total else 0.0


def _stacks(step_id: str, agg_id: str, new: AggregationResult,
            stacks: tuple[dict[str, int], dict[str, int]],
            scale: tuple[float, float] | None) -> AggregationDiff:
    """Stacks compared as folded lines; BEFORE's weights are scaled to AFTER's duration when
    the durations differ, so the differential flame graph compares like with like."""
    folded_before, folded_after = stacks
    per_second = scale is not None
    sb, sa = scale if scale else (1.0, 1.0)
    if scale:
        ratio = sb / sa
        folded_before = {k: int(round(v * ratio)) for k, v in folded_before.items()}
    rows = [RowChange(stack, {}, folded_before[stack] * (sa if per_second else 1)
                      if stack in folded_before else None,
                      folded_after[stack] * (sa if per_second else 1)
                      if stack in folded_after else None)
            for stack in dict.fromkeys([*folded_after, *folded_before])]
    ranked = _ranked(rows)
    return AggregationDiff(step_id, agg_id, new.kind, new.keys, new.unit, per_second,
                           _rows_score(ranked), rows=tuple(ranked), stacks=True,
                           folded_before=folded_before, folded_after=folded_after)


__all__ = ["compare_runs", "factor_of", "hist_change", "run_warnings"]
