"""Hosts far from the fleet: per number (an aggregation's row statistic), the hosts whose value
is far from the median of the hosts that have it, by the median absolute deviation (MAD).

A host is an outlier when its modified z-score, 0.6745·|x − median| / MAD, is above 3.5
(Iglewicz and Hoaglin). When the MAD is 0 (most hosts agree exactly), a host is an outlier
when it differs from the median by more than half the median's size; its score is None.
Fewer than three hosts have no median worth the name: nothing is flagged.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bpfrun.fleet.aggregate import host_local, key_id
from bpfrun.result import AggregationResult, RunResult, StatsValue

MIN_HOSTS = 3
THRESHOLD = 3.5
_STATS = ("count", "sum", "avg", "p50", "p90", "p99", "max")


@dataclass(frozen=True)
class Outlier:
    step: str
    aggregation: str
    key: Mapping[str, Any]
    stat: str  # "value" for counts and sums, else the statistic (p99, avg, …)
    host: str
    value: float
    median: float
    mad: float
    score: float | None  # the modified z-score; None when the MAD is 0

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "aggregation": self.aggregation, "key": dict(self.key),
                "stat": self.stat, "host": self.host, "value": self.value,
                "median": self.median, "mad": self.mad, "score": self.score}


def find_outliers(runs: Sequence[tuple[str, RunResult]]) -> list[Outlier]:
    """The outliers among hosts that ran, in a fixed order (step, aggregation, key, stat,
    host), so that the order of the inputs does not matter."""
    numbers: dict[tuple[str, str, str, str], dict[str, float]] = {}
    keys: dict[str, Mapping[str, Any]] = {}
    for host, run in runs:
        for step in run.steps:
            if step.status != "ran":
                continue
            for agg_id, agg in step.aggregations.items():
                for kid, key, stat, value in _numbers(agg):
                    keys[kid] = key
                    numbers.setdefault((step.id, agg_id, kid, stat), {})[host] = value
    out: list[Outlier] = []
    for (step_id, agg_id, kid, stat), by_host in sorted(numbers.items()):
        for host, value, median, mad, score in far_hosts(by_host):
            out.append(Outlier(step_id, agg_id, keys[kid], stat, host, value, median, mad,
                               score))
    return out


def _numbers(agg: AggregationResult) -> list[tuple[str, Mapping[str, Any], str, float]]:
    if host_local(agg.keys, agg.kind):
        return []  # a pid's row exists on one host only
    out = []
    for row in agg.rows:
        kid = key_id(row.key)
        if isinstance(row.value, StatsValue):
            for stat in _STATS:
                value = getattr(row.value, stat, None)
                if isinstance(value, int | float):
                    out.append((kid, row.key, stat, float(value)))
        elif isinstance(row.value, int | float):
            out.append((kid, row.key, "value", float(row.value)))
    return out


def far_hosts(by_host: Mapping[str, float]
              ) -> list[tuple[str, float, float, float, float | None]]:
    """(host, value, median, MAD, score) of each host far from the others' median."""
    if len(by_host) < MIN_HOSTS:
        return []
    median = statistics.median(by_host.values())
    mad = statistics.median(abs(v - median) for v in by_host.values())
    out = []
    for host, value in sorted(by_host.items()):
        if mad > 0:
            score: float | None = round(0.6745 * abs(value - median) / mad, 3)
            far = score is not None and score > THRESHOLD
        else:
            score = None
            far = abs(value - median) > abs(median) / 2 and value != median
        if far:
            out.append((host, value, median, mad, score))
    return out
