"""One aggregation of many hosts: rows of equal keys added up exactly.

Counts and sums add; min and max take the extremes; `stats` add their counts and sums (the
average is recomputed); histograms add bucket by bucket and their percentiles are recomputed
from the merged buckets (nearest rank, the bucket's upper bound, within the merged min and max
and narrowed by the exact counts above limits, as the runtime does for one host). Rows whose
key is host-local (a pid means nothing on another host) or whose value cannot be added (`avg`)
get a `host` key instead of being added.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

from bpfrun.result import AggregationResult, AggregationRow, Bucket, HistValue, StatsValue
from bpfrun.result.values import Over, RowValue

HOST_KEY = "host"
# Key expressions that name something only one host knows: a process or thread id, a
# cgroup id (an inode number there).
_HOST_LOCAL_WORDS = ("pid", "tid", "tgid", "cgroup")
_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def host_local(keys: Sequence[str], kind: str) -> bool:
    """Whether rows must stay per host: keys naming pids, or values that do not add up."""
    if kind == "avg":
        return True
    return any(word in _HOST_LOCAL_WORDS for k in keys for word in re.split(r"[^a-z0-9]+",
                                                                               k.lower()))


def key_id(key: Mapping[str, object]) -> str:
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


def merge_aggregation(parts: Sequence[tuple[str, AggregationResult]]) -> AggregationResult:
    """The aggregation of every (host, aggregation) in `parts` (hosts sorted by the caller)."""
    first = parts[0][1]
    per_host = host_local(first.keys, first.kind)
    keys = (*first.keys, HOST_KEY) if per_host else first.keys
    grouped: dict[str, tuple[dict[str, object], list[RowValue]]] = {}
    for host, agg in parts:
        for row in agg.rows:
            key = {**row.key, HOST_KEY: host} if per_host else dict(row.key)
            grouped.setdefault(key_id(key), (key, []))[1].append(row.value)
    rows = [AggregationRow(key, merge_values(first.kind, values))
            for key, values in grouped.values()]
    rows.sort(key=lambda r: (-_weight(r.value), key_id(r.key)))
    total = max([len(rows)] + [a.total_rows for _, a in parts])
    shown = tuple(rows[: first.top] if first.top is not None else rows)
    return AggregationResult(first.kind, tuple(keys), first.unit, first.top, total, shown,
                             first.folded, first.svg)


def _weight(value: RowValue) -> float:
    if isinstance(value, StatsValue):  # hist rows too
        return float(value.sum if value.sum is not None else value.count)
    return float(value) if value is not None else -math.inf


def merge_values(kind: str, values: Sequence[RowValue]) -> RowValue:
    """The value of one key over hosts."""
    if kind in ("hist", "lhist"):
        return merge_hists([v for v in values if isinstance(v, HistValue)])
    if kind == "stats":
        return _stats([v for v in values if isinstance(v, StatsValue)])
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return None
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    return _add(numbers)  # count, sum (avg rows are per host: one value each)


def _add(numbers: Iterable[int | float]) -> int | float:
    total = sum(numbers)
    return round(total, 9) if isinstance(total, float) else total


def _stats(values: Sequence[StatsValue]) -> StatsValue:
    count = sum(v.count for v in values)
    has = [v for v in values if v.count]
    if not has:
        return StatsValue(count)
    total = _add(v.sum or 0 for v in has)
    return StatsValue(count, total, min(v.min for v in has if v.min is not None),
                      max(v.max for v in has if v.max is not None), round(total / count, 9))


def merge_hists(values: Sequence[HistValue]) -> HistValue:
    """Histograms added bucket by bucket, percentiles recomputed from the merged buckets."""
    counts: dict[tuple[float | None, float | None], int] = {}
    for v in values:
        for b in v.buckets:
            counts[(b.low, b.high)] = counts.get((b.low, b.high), 0) + b.count
    buckets = tuple(Bucket(lo, hi, c) for (lo, hi), c in sorted(counts.items(), key=_edge))
    over: dict[float, int] = {}
    for v in values:
        for o in v.over:
            over[o.limit] = over.get(o.limit, 0) + o.count
    st = _stats(values)
    count = sum(b.count for b in buckets)
    p50, p90, p99 = (percentile(q, buckets, st.min, st.max, over) if count else None
                     for _, q in _PERCENTILES)
    return HistValue(count, st.sum, st.min, st.max, st.avg, p50, p90, p99, buckets,
                     tuple(Over(limit, c) for limit, c in sorted(over.items())))


def _edge(item: tuple[tuple[float | None, float | None], int]) -> tuple[float, float]:
    (low, high), _ = item
    return (-math.inf if low is None else low, math.inf if high is None else high)


def percentile(q: float, buckets: Sequence[Bucket], low_bound: int | float | None,
               high_bound: int | float | None, over: Mapping[float, int]
               ) -> int | float | None:
    """The q-quantile's upper bound: the bucket holding the nearest rank, capped by the max,
    and by every counted limit at least that many values were not above."""
    count = sum(b.count for b in buckets)
    r = max(1, math.ceil(Fraction(str(q)) * count))
    seen, high = 0, None
    for b in buckets:
        seen += b.count
        if seen >= r:
            high = b.high
            break
    if high is None or (high_bound is not None and high > high_bound):
        high = high_bound
    for limit, n_over in over.items():
        if count - n_over >= r:
            high = limit if high is None else min(high, limit)
    if high is not None and low_bound is not None and high < low_bound:
        high = low_bound
    return high
