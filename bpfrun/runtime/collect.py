"""Results: raw map contents → typed views (for expressions) and the result model's parts.

Histogram percentiles come from log2 (or linear) buckets, so they are bucket upper bounds and
are presented as such ("≤"). Typed values (Duration, Size) keep thresholds honest whatever
display unit a histogram uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bpfrun.compile.program import AggPlan
from bpfrun.expr.evaluate import Fields
from bpfrun.frontend.model import HIST_STATS
from bpfrun.result import (
    AggregationResult,
    AggregationRow,
    Bucket,
    EventsResult,
    FramedStack,
    HistValue,
    RowValue,
    StackFrame,
    StatsValue,
)
from bpfrun.runtime.runner import RawAgg, RawEvents
from bpfrun.units import Duration, Size

PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def _typed(vtype: str, value: float | None) -> Any:
    if value is None:
        return None
    if vtype == "duration":
        return Duration(int(value))
    if vtype == "size":
        return Size(int(value))
    return int(value) if float(value).is_integer() else value


def _buckets(plan: AggPlan, slots: dict[int, int]) -> list[tuple[float | None, float | None, int]]:
    """(low, high, count) in native units (ns, bytes, plain), low inclusive, high exclusive."""
    out = []
    for slot in sorted(slots):
        if plan.kind == "lhist" and plan.lhist:
            lo, hi, st = plan.lhist
            n = (hi - lo) // st
            low: float | None = None if slot == 0 else lo + (slot - 1) * st
            high: float | None = lo if slot == 0 else (None if slot > n else lo + slot * st)
        else:
            # BCC's bpf_log2l puts 0 and 1 both in slot 1: that bucket starts at 0.
            low = 0 if slot <= 1 else (1 << (slot - 1)) * plan.scale
            high = (1 << slot) * plan.scale if slot > 0 else plan.scale
        out.append((low, high, slots[slot]))
    return out


def hist_value(plan: AggPlan, value: dict[str, Any]) -> dict[str, Any]:
    """Typed stats of one histogram row: count, sum, min, max, avg, p50/p90/p99, buckets."""
    st = value["stats"] or {"count": 0, "sum": 0, "min": None, "max": None}
    buckets = _buckets(plan, value["slots"])
    count = sum(c for _, _, c in buckets)
    typed: dict[str, Any] = {"count": count}
    if count == 0:
        typed.update({k: None for k in HIST_STATS if k != "count"})
    else:
        typed["sum"] = _typed(plan.value_type, st["sum"])
        typed["min"] = _typed(plan.value_type, st["min"])
        typed["max"] = _typed(plan.value_type, st["max"])
        typed["avg"] = _typed(plan.value_type, st["sum"] / st["count"]) if st["count"] else None
        for name, q in PERCENTILES:
            target, seen = q * count, 0
            for _, high, c in buckets:
                seen += c
                if seen >= target:
                    top = high if high is not None else st["max"]
                    if top is not None and st["max"] is not None:
                        top = min(top, st["max"])  # still an upper bound, and a tighter one
                    typed[name] = _typed(plan.value_type, top)
                    break
    typed["buckets"] = buckets
    return typed


def stats_value(plan: AggPlan, st: dict[str, Any]) -> dict[str, Any]:
    if not st["count"]:
        return {"count": 0, "sum": None, "min": None, "max": None, "avg": None}
    t = plan.value_type
    return {"count": st["count"], "sum": _typed(t, st["sum"]), "min": _typed(t, st["min"]),
            "max": _typed(t, st["max"]), "avg": _typed(t, st["sum"] / st["count"])}


def _sort_weight(v: Any) -> float:
    if isinstance(v, dict):
        return float(v.get("count") or 0) if "buckets" in v else _num(v.get("sum") or 0)
    return _num(v)


def _num(v: Any) -> float:
    if isinstance(v, Duration):
        return v.ns
    if isinstance(v, Size):
        return v.bytes
    return float(v or 0)


@dataclass
class Row(Fields):
    key: dict[str, Any]
    value: Any

    def field(self, name: str) -> Any:
        if name in self.key:
            return self.key[name]
        # `row.syscall_name` for the key `syscall_name(args.id)`, `row.filename` for
        # `str(args.filename)`: a short name works when it is unambiguous.
        short = [k for k in self.key if k.split("(")[0] == name
                 or k.rstrip(")").rsplit(".", 1)[-1] == name]
        if len(short) == 1:
            return self.key[short[0]]
        if name == "value":
            return self.value
        if isinstance(self.value, dict) and name in self.value:
            return self.value[name]
        raise KeyError(name)


@dataclass
class AggView(Fields):
    """An aggregation as expressions see it: `dist.p99`, `slow_by.top[0].args.prev_comm`."""

    plan: AggPlan
    rows: list[Row] = field(default_factory=list)  # sorted by value, largest first

    def field(self, name: str) -> Any:
        if name in ("top", "rows"):
            return self.rows
        kind = self.plan.kind
        if name == "total":  # of counts and sums: the sum of the rows; of others: hits
            if kind in ("stats", "hist", "lhist"):
                return sum(int(r.value.get("count") or 0) for r in self.rows)
            vtype = "int" if kind == "count" else self.plan.value_type
            return _typed(vtype, sum(_num(r.value) for r in self.rows))
        if not self.plan.keys:  # unkeyed: the one row's stats are the aggregation's
            if kind == "count" and name in ("count", "value"):
                return self.rows[0].value if self.rows else 0
            if not self.rows:
                if name in ("value", *HIST_STATS):
                    return 0 if name == "count" else None
                raise KeyError(name)
            return self.rows[0].field(name)
        if name == "count" and kind == "count":
            return self.field("total")
        raise KeyError(name)


def build_view(raw: RawAgg) -> AggView:
    plan = raw.plan
    rows = []
    for key, value in raw.rows:
        if plan.kind in ("hist", "lhist"):
            typed: Any = hist_value(plan, value)
        elif plan.kind in ("count", "sum"):
            typed = _typed(plan.value_type if plan.kind == "sum" else "int", value)
        else:
            st = stats_value(plan, value)
            typed = st if plan.kind == "stats" else st[plan.kind]
        rows.append(Row(key, typed))
    rows.sort(key=lambda r: (-_sort_weight(r.value), repr(r.key)))
    return AggView(plan, rows)


# -- result.json ---------------------------------------------------------------------------
def to_unit(plan: AggPlan, value: Any) -> Any:
    """A typed value as a JSON number in the aggregation's display unit."""
    if isinstance(value, (Duration, Size)):
        n = value.ns if isinstance(value, Duration) else value.bytes
        scaled = n / plan.scale
        return int(scaled) if float(scaled).is_integer() else round(scaled, 3)
    if isinstance(value, float):
        return round(value, 3)
    return value


def agg_result(view: AggView) -> AggregationResult:
    """An aggregation as result.json holds it: the first `top` rows, numbers in its unit."""
    plan = view.plan
    shown = view.rows[: plan.top] if plan.top else view.rows
    return AggregationResult(plan.kind, tuple(k.expr for k in plan.keys), plan.unit, plan.top,
                             len(view.rows),
                             tuple(AggregationRow(dict(r.key), _row_value(plan, r.value),
                                                  _frames(r.key))
                                   for r in shown))


def _frames(key: dict[str, Any]) -> dict[str, tuple[StackFrame, ...]]:
    """A row's stack keys in full, for the report (the key keeps the names)."""
    return {k: v.frames for k, v in key.items() if isinstance(v, FramedStack) and v.frames}


def _row_value(plan: AggPlan, value: Any) -> RowValue:
    if not isinstance(value, dict):
        number: RowValue = to_unit(plan, value)
        return number
    stats = {k: to_unit(plan, x) for k, x in value.items() if k != "buckets"}
    if "buckets" not in value:
        return StatsValue(**stats)
    return HistValue(**stats, buckets=tuple(
        Bucket(_bucket_edge(plan, lo), _bucket_edge(plan, hi), c)
        for lo, hi, c in value["buckets"]))


def _bucket_edge(plan: AggPlan, edge: float | None) -> float | None:
    if edge is None:
        return None
    scaled = edge / plan.scale
    return int(scaled) if float(scaled).is_integer() else round(scaled, 3)


def events_result(raw: RawEvents) -> EventsResult:
    kept = len(raw.rows)
    return EventsResult(raw.plan.probe, raw.plan.id, tuple(f.expr for f in raw.plan.fields),
                        tuple(dict(r) for r in raw.rows),
                        max(0, raw.seen - kept) if raw.plan.limit else 0, raw.seen)


class EventsView(Fields):
    def __init__(self, raw: RawEvents) -> None:
        self.raw = raw

    def field(self, name: str) -> Any:
        if name == "rows":
            return self.raw.rows
        if name == "count":
            return self.raw.seen
        if name == "dropped":
            return max(0, self.raw.seen - len(self.raw.rows)) if self.raw.plan.limit else 0
        raise KeyError(name)
