"""Results: raw map contents → typed views (for expressions) and the result model's parts.

Histogram percentiles come from log2 (or linear) buckets: `p99` is an upper bound ("≤") and
`p99_low` the lower one, both tightened by the exact counts of values above the limits the
kernel counted (compile/lower/limits.py). A percentile compared with such a limit is decided
on that count, never on a bucket edge (`decide`). Typed values (Duration, Size) keep
thresholds honest whatever display unit a histogram uses.

The percentile pq of N values is the nearest rank: the ceil(q·N)-th smallest value. So
pq > L exactly when fewer than ceil(q·N) values are ≤ L, i.e. when more than N - ceil(q·N)
values are above L: p99 > 1 ms iff more than 1 % of the values were above 1 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from bpfrun.compile.program import AggPlan
from bpfrun.expr.evaluate import PERCENTILE_RANKS, Distribution, Fields
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
from bpfrun.result.values import Over
from bpfrun.runtime.runner import RawAgg, RawEvents
from bpfrun.units import Duration, Size

PERCENTILES = tuple(PERCENTILE_RANKS.items())


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


def rank(q: float, count: int) -> int:
    """The nearest rank of the q-quantile of `count` values (1-based), exact in rationals."""
    return max(1, math.ceil(Fraction(str(q)) * count))


def hist_value(plan: AggPlan, value: dict[str, Any]) -> dict[str, Any]:
    """Typed stats of one histogram row: count, sum, min, max, avg, p50/p90/p99 (upper
    bounds), buckets, and `over` {limit: count} (base units) when limits were counted."""
    st = value["stats"] or {"count": 0, "sum": 0, "min": None, "max": None}
    slots = value["slots"]
    over = {limit: int(slots.get(plan.limit_slot + i, 0)) for i, limit in enumerate(plan.limits)}
    if plan.limits:
        slots = {s: c for s, c in slots.items() if s < plan.limit_slot}
    buckets = _buckets(plan, slots)
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
            high = _percentile_range(rank(q, count), count, buckets, st, over)[1]
            typed[name] = _typed(plan.value_type, high)
    typed["buckets"] = buckets
    if plan.limits:
        typed["over"] = over
    return typed


def percentile_low(value: dict[str, Any], name: str) -> Any:
    """The lower bound of a histogram row's percentile (`p99_low`), typed as its max."""
    count = int(value.get("count") or 0)
    if not count:
        return None
    st = {"min": _base(value["min"]), "max": _base(value["max"])}
    low = _percentile_range(rank(PERCENTILE_RANKS[name], count), count, value["buckets"], st,
                            value.get("over") or {})[0]
    kind = type(value["max"])
    return kind(int(low)) if kind in (Duration, Size) and low is not None else low


def _percentile_range(r: int, count: int, buckets: list[tuple[float | None, float | None, int]],
                      st: dict[str, Any], over: dict[int, int]) -> tuple[Any, Any]:
    """Bounds of the r-th smallest value: its bucket's edges, within min and max, narrowed
    by every counted limit (p <= L when at least r values are <= L, else p > L)."""
    seen, low, high = 0, None, None
    for b_low, b_high, c in buckets:
        seen += c
        if seen >= r:
            low, high = b_low, b_high
            break
    if high is None or (st["max"] is not None and high > st["max"]):
        high = st["max"]
    if low is None or (st["min"] is not None and low < st["min"]):
        low = st["min"]
    for limit, n_over in over.items():
        if count - n_over >= r:
            high = limit if high is None else min(high, limit)
        else:
            low = limit + 1 if low is None else max(low, limit + 1)
    return low, high


def _base(value: Any) -> int | None:
    """A limit in base units (ns, bytes, a plain integer); None if it is not one."""
    if isinstance(value, Duration):
        return value.ns
    if isinstance(value, Size):
        return value.bytes
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def over_limit(value: dict[str, Any], limit: Any) -> int | None:
    """How many of a histogram row's values were above `limit`, if the kernel counted it."""
    base = _base(limit)
    over: dict[int, int] = value.get("over") or {}
    return over.get(base) if base is not None else None


def decide(value: dict[str, Any], name: str, op: str, limit: Any) -> bool | None:
    """`<name> <op> limit` for a percentile of a histogram row: exact where the kernel counted
    the limit, else where the percentile's bounds settle it; None otherwise."""
    base, count = _base(limit), int(value.get("count") or 0)
    if base is None or count == 0:
        return None
    if op in (">=", "<"):  # p >= X iff p > X - 1: the values are integers
        base -= 1
    n_over = (value.get("over") or {}).get(base)
    if n_over is not None:
        above = n_over > count - rank(PERCENTILE_RANKS[name], count)
    else:
        low, high = _base(percentile_low(value, name)), _base(value.get(name))
        if low is not None and low > base:
            above = True
        elif high is not None and high <= base:
            above = False
        else:
            return None  # the bucket straddles the limit: compare the upper bound as before
    return above if op in (">", ">=") else not above


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
class Row(Distribution):
    key: dict[str, Any]
    value: Any

    def over(self, limit: Any) -> int | None:
        return over_limit(self.value, limit) if isinstance(self.value, dict) else None

    def compare_percentile(self, name: str, op: str, limit: Any) -> bool | None:
        if not isinstance(self.value, dict) or "buckets" not in self.value:
            return None
        return decide(self.value, name, op, limit)

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
        if isinstance(self.value, dict) and "buckets" in self.value \
                and name.removesuffix("_low") in PERCENTILE_RANKS:
            return percentile_low(self.value, name.removesuffix("_low"))
        raise KeyError(name)


@dataclass
class AggView(Distribution):
    """An aggregation as expressions see it: `dist.p99`, `slow_by.top[0].args.prev_comm`."""

    plan: AggPlan
    rows: list[Row] = field(default_factory=list)  # sorted by value, largest first

    def over(self, limit: Any) -> int | None:
        if self.plan.keys or self.plan.kind not in ("hist", "lhist"):
            return None
        if not self.rows:  # nothing recorded: none over, if the limit was counted
            base = _base(limit)
            return 0 if base is not None and base in self.plan.limits else None
        return self.rows[0].over(limit)

    def compare_percentile(self, name: str, op: str, limit: Any) -> bool | None:
        if self.plan.keys or not self.rows:
            return None
        return self.rows[0].compare_percentile(name, op, limit)

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
                if name in ("value", *HIST_STATS, *(f"{p}_low" for p in PERCENTILE_RANKS)):
                    return 0 if name == "count" else None
                raise KeyError(name)
            return self.rows[0].field(name)
        if name == "count" and kind == "count":
            return self.field("total")
        raise KeyError(name)


def build_view(raw: RawAgg) -> AggView:
    plan = raw.plan
    rows = []
    for key, recorded in raw.rows:
        value = unsampled(recorded, plan.sample) if plan.sample > 1 else recorded
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


def unsampled(value: Any, n: int) -> Any:
    """A value of a probe sampled 1 in `n`, as if every hit had been recorded: counts, sums
    and histogram buckets times n; min and max stay (an average, sum / count, too)."""
    if not isinstance(value, dict):
        return value * n
    if "slots" in value:
        return {"slots": {slot: c * n for slot, c in value["slots"].items()},
                "stats": None if value["stats"] is None else unsampled(value["stats"], n)}
    return {**value, "count": value["count"] * n, "sum": value["sum"] * n}


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
    stats = {k: to_unit(plan, x) for k, x in value.items()
             if k not in ("buckets", "over") and not k.endswith("_low")}
    if "buckets" not in value:
        return StatsValue(**stats)
    return HistValue(**stats, buckets=tuple(
        Bucket(_bucket_edge(plan, lo), _bucket_edge(plan, hi), c)
        for lo, hi, c in value["buckets"]), over=tuple(
        Over(to_unit(plan, _typed(plan.value_type, limit)), n)
        for limit, n in sorted(value.get("over", {}).items())))


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
