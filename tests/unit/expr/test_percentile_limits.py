"""Percentiles compared with a limit the kernel counted are decided on the exact count:
pq > L iff more than N - ceil(q·N) values are above L (nearest rank), so p99 > 1 ms iff more
than 1 % of the values were over 1 ms, whatever the buckets say."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.program import AggPlan
from bpfrun.expr.evaluate import EvalError, Evaluator
from bpfrun.expr.parser import parse
from bpfrun.runtime.collect import AggView, Row, hist_value
from bpfrun.units import Duration

MS = 1_000_000
N = 4493
PLAN = AggPlan("dist", "hist", "agg_dist", None, [], "duration", "us", 1000, None, None,
               array=True, limits=(MS - 1, MS), limit_slot=65)


def dist(over: int, at_limit: int = 0) -> AggView:
    """N wakeups: `over` in [1.024, 2.048) ms, `at_limit` exactly 1 ms, the rest in
    [512, 1024) us: p99's log2 bucket ends at 1.024 ms whatever the share over 1 ms."""
    under = N - over
    slots = {10: under, 11: over, 65: over + at_limit, 66: over}
    st = {"count": N, "sum": N * MS, "min": 600_000, "max": 1_900_000 if over else MS}
    return AggView(PLAN, [Row({}, hist_value(PLAN, {"slots": slots, "stats": st}))])


def ev(text: str, view: AggView) -> Any:
    return Evaluator({"params": {"threshold": Duration(MS)}, "dist": view}).eval(parse(text))


@pytest.mark.parametrize(("over", "fires"), [(0, False), (44, False), (45, True), (58, True)])
def test_p99_over_the_limit_iff_more_than_one_percent_are_over(over: int, fires: bool) -> None:
    view = dist(over)
    assert ev("dist.p99 > params.threshold", view) is fires
    assert ev("dist.p99 <= params.threshold", view) is not fires
    assert ev("params.threshold < dist.p99", view) is fires
    assert ev("over(dist, params.threshold)", view) == over


def test_the_old_upper_bound_would_have_fired_at_0_98_percent() -> None:
    view = dist(44)  # the run: 44 of 4,493 over 1 ms
    assert view.rows[0].value["buckets"][0] == (512_000, 1_024_000, N - 44)
    assert ev("dist.p99", view) == Duration(MS - 1)  # by the exact counts, not 1.024 ms
    assert ev("dist.p99_low", view) == Duration(600_000)
    assert ev("percent(over(dist, params.threshold), dist.count)", view) == 0.98


def test_at_or_over_counts_the_values_equal_to_the_limit() -> None:
    view = dist(40, at_limit=10)  # 50 at or over 1 ms, 40 over it
    assert ev("dist.p99 >= params.threshold", view) is True
    assert ev("dist.p99 < params.threshold", view) is False
    assert ev("dist.p99 > params.threshold", view) is False  # p99 is exactly 1 ms


def test_a_limit_not_counted_is_decided_by_the_bounds_or_the_upper_bound() -> None:
    view = dist(44)
    assert ev("dist.p99 > 100us", view) is True  # p99 >= 600us (the min)
    assert ev("dist.p99 > 5ms", view) is False  # p99 <= 1 ms
    with pytest.raises(EvalError, match="not counted"):
        ev("over(dist, 5ms)", view)


def test_percent_of_nothing_is_null() -> None:
    assert ev("percent(3, 0)", dist(0)) is None
