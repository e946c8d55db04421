"""Expression functions that read across an aggregation's rows and a step's series: the
value of one key, the leak suspect among outstanding allocations, and a net trend.

    value_at(agg, key)       the value of the row whose one key equals `key` (0 for a count
                             or sum without that row; null for other kinds)
    leak_suspect(outstanding, allocs, freed, max_freed_percent)
                             the stack with the most outstanding blocks among those whose
                             freed blocks are at most that percentage of their allocations —
                             a leak whatever its count; an empty stack when none is
                             (not null: a step without a leak has data, it is fine)
    trend(series, up, down)  how `up - down` (two aggregations' gains per tick of an
                             `interval:` probe) moved over the step: .gain (net total),
                             .per_second, .late_per_second (the later half of the ticks: a
                             leak keeps growing, a warming cache levels off), .ticks

Aggregations are read as expressions see them (`agg.field("rows")`, rows with a `key` dict
and a `value`); the series is a step's list of points: {"t": seconds, "<agg>": gain, ...}.
Every function is registered with its arity in RESULT_FUNCTIONS, with frames.py's and
wakeups.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bpfrun.expr import frames, wakeups
from bpfrun.expr.frames import FrameError

FunctionError = FrameError


def _rows(agg: Any) -> list[Any]:
    field = getattr(agg, "field", None)
    if field is None:
        raise FunctionError("takes an aggregation")
    rows: list[Any] = field("rows")
    return rows


def _kind(agg: Any) -> str | None:
    plan = getattr(agg, "plan", None)
    return getattr(plan, "kind", None)


def _only_key(row: Any) -> Any:
    key = getattr(row, "key", {})
    if len(key) != 1:
        raise FunctionError("takes an aggregation with one `by:` key")
    return next(iter(key.values()))


def value_at(agg: Any, key: Any) -> Any:
    for row in _rows(agg):
        if _only_key(row) == key:
            return row.value
    return 0 if _kind(agg) in ("count", "sum") else None


def _number(value: Any) -> float:
    for unit in ("bytes", "ns"):
        if hasattr(value, unit):
            return float(getattr(value, unit))
    return float(value or 0)


def leak_suspect(outstanding: Any, allocs: Any, freed: Any, max_freed_percent: Any) -> Any:
    limit = _number(max_freed_percent)
    for row in _rows(outstanding):  # largest first
        stack = _only_key(row)
        made = _number(value_at(allocs, stack))
        back = _number(value_at(freed, stack))
        if _number(row.value) > 0 and made > 0 and 100 * back <= limit * made:
            return stack
    return []


def trend(series: Any, up: str, down: str) -> dict[str, Any]:
    if not isinstance(series, Sequence) or isinstance(series, str):
        raise FunctionError("takes a step's series (`series`) and two aggregation ids")
    if not isinstance(up, str) or not isinstance(down, str):
        raise FunctionError("takes the ids of two aggregations, as strings")
    gains = [int(p.get(up, 0)) - int(p.get(down, 0)) for p in series]
    times = [float(p["t"]) for p in series]
    late = len(gains) // 2
    return {"gain": sum(gains), "ticks": len(gains),
            "per_second": _per_second(gains, times, 0),
            "late_per_second": _per_second(gains, times, late)}


def _per_second(gains: list[int], times: list[float], first: int) -> float | None:
    """Net gain a second over ticks first.. (each tick covers the time since the one before)."""
    if len(gains) <= first:
        return None
    start = times[first - 1] if first > 0 else 0.0
    seconds = times[-1] - start
    return sum(gains[first:]) / seconds if seconds > 0 else None


def _hottest(agg: Any) -> Any:
    return frames.hottest(_rows(agg))


# name -> (arity, function); a null argument gives null without a call
RESULT_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "own_frame": (1, frames.own_frame), "code": (1, frames.code), "via": (1, frames.via),
    "code_via": (1, frames.code_via), "hottest": (1, _hottest), "value_at": (2, value_at),
    "leak_suspect": (4, leak_suspect), "trend": (3, trend),
    "waker": (2, wakeups.waker),
    "wakers": (1, lambda agg: wakeups.wakers(_rows(agg))),
    "task_wakers": (1, lambda agg: wakeups.wakers(_rows(agg), tasks_only=True))}
