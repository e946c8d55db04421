"""One step of many hosts: its aggregations merged, its events tagged with their host, its
thresholds fired where any host's fired, its losses and overhead added.

A step ran in the fleet when it ran on any host; its aggregations merge the hosts where it
ran. A step that ran nowhere keeps the first reason (by host name) of a failure, else of a
skip. Interval series are per host in time and are not merged (a note says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bpfrun.errors import UsageError
from bpfrun.fleet.aggregate import HOST_KEY, key_id, merge_aggregation
from bpfrun.result import (
    AggregationResult,
    EventsResult,
    LostCounts,
    Overhead,
    RunResult,
    StepResult,
    StepStatus,
    SymbolCounts,
    ThresholdResult,
    UnresolvedFrames,
)

SERIES_NOTE = "interval series are per host and not merged; see each host's report"


def merge_steps(runs: Sequence[tuple[str, RunResult]]) -> tuple[StepResult, ...]:
    """Every step of the runbook, in its order, merged over the hosts (sorted by name)."""
    order = list(dict.fromkeys(s.id for _, run in runs for s in run.steps))
    out = []
    for step_id in order:
        parts = [(host, s) for host, run in runs if (s := run.step(step_id)) is not None]
        out.append(merge_step(parts))
    return tuple(out)


def merge_step(parts: Sequence[tuple[str, StepResult]]) -> StepResult:
    first = parts[0][1]
    done = [(h, s) for h, s in parts if s.status == "ran"]
    failed = any(s.status == "failed" for _, s in parts)
    status: StepStatus = "ran" if done else "failed" if failed else "skipped"
    reason = None if done else next((f"{h}: {s.reason}" for h, s in parts
                                     if s.status == status and s.reason), None)
    notes = list(dict.fromkeys(n for _, s in parts for n in s.notes))
    if any(s.series for _, s in done):
        notes.append(SERIES_NOTE)
    return StepResult(
        first.id, first.title, first.why, status, reason,
        max((s.seconds for _, s in parts), default=0.0),
        max((s.compile_seconds for _, s in parts), default=0.0), first.program,
        tuple(dict.fromkeys(p for _, s in parts for p in s.probes)),
        {k: v for _, s in parts for k, v in s.fallbacks.items()},
        {k: v for _, s in parts for k, v in s.predicates.items()},
        _aggregations(done), _events(done), _thresholds(parts), _captures(done),
        LostCounts(*(sum(getattr(s.lost, f) for _, s in parts)
                     for f in ("events", "stacks", "unpaired", "map_full"))),
        (), tuple(notes), _symbols(done), _overhead(done))


def _aggregations(done: Sequence[tuple[str, StepResult]]) -> dict[str, AggregationResult]:
    ids = list(dict.fromkeys(a for _, s in done for a in s.aggregations))
    out = {}
    for agg_id in ids:
        parts = [(h, s.aggregations[agg_id]) for h, s in done if agg_id in s.aggregations]
        shapes = {(a.kind, a.keys, a.unit) for _, a in parts}
        if len(shapes) > 1:
            raise UsageError(f"aggregation {agg_id!r} differs between hosts (kind, keys or "
                             "unit): their runbooks are different versions",
                             hint="merge results of the same runbook version")
        out[agg_id] = merge_aggregation(parts)
    return out


def _events(done: Sequence[tuple[str, StepResult]]) -> tuple[EventsResult, ...]:
    by_id: dict[tuple[str, str], list[tuple[str, EventsResult]]] = {}
    for host, step in done:
        for e in step.events:
            by_id.setdefault((e.probe, e.id), []).append((host, e))
    out = []
    for (probe, ev_id), parts in by_id.items():
        fields = parts[0][1].fields
        rows = tuple({HOST_KEY: host, **row} for host, e in parts for row in e.rows)
        out.append(EventsResult(probe, ev_id, (HOST_KEY, *fields), rows,
                                sum(e.dropped for _, e in parts), sum(e.seen for _, e in parts)))
    return tuple(out)


def _thresholds(parts: Sequence[tuple[str, StepResult]]) -> dict[str, ThresholdResult]:
    """Fired where any host's fired; else not fired when a host decided, else undecided."""
    names = list(dict.fromkeys(t for _, s in parts for t in s.thresholds))
    out = {}
    for name in names:
        each = [(h, s.thresholds[name]) for h, s in parts if name in s.thresholds]
        fired = [(h, t) for h, t in each if t.fired]
        decided = [t for _, t in each if t.fired is not None]
        pick = fired[0][1] if fired else each[0][1]
        message = pick.message
        if fired:
            message = f"{', '.join(h for h, _ in fired)}: {pick.message}"
        out[name] = ThresholdResult(bool(fired) if decided else None, pick.severity, message,
                                    pick.when)
    return out


def _captures(done: Sequence[tuple[str, StepResult]]) -> dict[str, Any]:
    """A capture every host agrees on, else its value on each host."""
    names = list(dict.fromkeys(c for _, s in done for c in s.captures))
    out: dict[str, Any] = {}
    for name in names:
        values = {h: s.captures[name] for h, s in done if name in s.captures}
        distinct = {key_id({"v": v}) for v in values.values()}
        out[name] = next(iter(values.values())) if len(distinct) == 1 else values
    return out


def _symbols(done: Sequence[tuple[str, StepResult]]) -> SymbolCounts | None:
    have = [s.symbols for _, s in done if s.symbols is not None]
    if not have:
        return None
    frames: dict[tuple[str, str], int] = {}
    for sym in have:
        for u in sym.by_reason:
            frames[(u.reason, u.module)] = frames.get((u.reason, u.module), 0) + u.frames
    by_reason = sorted(frames.items(), key=lambda item: (-item[1], item[0]))
    return SymbolCounts(sum(s.user_frames for s in have), sum(s.unresolved for s in have),
                        tuple(UnresolvedFrames(r, m, n) for (r, m), n in by_reason))


def _overhead(done: Sequence[tuple[str, StepResult]]) -> Overhead | None:
    """Nanoseconds and runs added; the share of CPUs is the highest host's."""
    have = [s.overhead for _, s in done if s.overhead is not None]
    if not have:
        return None
    budgets = [o.budget_percent for o in have if o.budget_percent is not None]
    return Overhead(sum(o.bpf_ns for o in have), sum(o.events for o in have),
                    max(o.cpu_percent for o in have), max(budgets) if budgets else None,
                    any(o.stopped for o in have))
