"""Raw map contents → typed views and result.json: histograms, units, sorting, truncation."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.lower import AggPlan, KeyField
from bpfrun.compile.program import EventPlan
from bpfrun.result import AggregationRow, Bucket, EventsResult, HistValue, StatsValue
from bpfrun.runtime.collect import (
    AggView,
    Row,
    agg_result,
    build_view,
    events_result,
    hist_value,
    stats_value,
)
from bpfrun.runtime.runner import RawAgg, RawEvents
from bpfrun.units import Duration, Size

US = 1000
COMM = KeyField("k0", "comm", "str", "str", 16)


def plan(kind: str, value_type: str = "int", unit: str | None = None, scale: int = 1,
         keys: list[KeyField] | None = None, top: int | None = None,
         lhist: tuple[int, int, int] | None = None) -> AggPlan:
    stats = f"agg_{kind}_stats" if kind in ("hist", "lhist") else None
    return AggPlan(kind, kind, f"agg_{kind}", stats, keys or [], value_type, unit, scale, top,
                   lhist)


def stats(count: int, total: int, low: int, high: int) -> dict[str, int]:
    return {"count": count, "sum": total, "min": low, "max": high}


HIST_US = plan("hist", "duration", "us", US)
# log2 slots of x / 1000: slot 1 holds [0, 2us), slot 4 [8us, 16us), slot 10 [512us, 1024us).
SLOTS = {1: 5, 4: 4, 10: 1}
STATS = stats(10, 800_000, 500, 700 * US)


def test_log2_buckets_in_native_units() -> None:
    value = hist_value(HIST_US, {"slots": SLOTS, "stats": STATS})
    assert value["buckets"] == [(0, 2 * US, 5), (8 * US, 16 * US, 4), (512 * US, 1024 * US, 1)]
    assert value["count"] == 10


def test_percentiles_are_bucket_upper_bounds_capped_by_max() -> None:
    value = hist_value(HIST_US, {"slots": SLOTS, "stats": STATS})
    assert value["p50"] == Duration(2 * US)  # 5 of 10 values are below 2us
    assert value["p90"] == Duration(16 * US)
    assert value["p99"] == Duration(700 * US)  # the bucket ends at 1024us, the max is 700us
    assert (value["min"], value["max"]) == (Duration(500), Duration(700 * US))
    assert value["sum"] == Duration(800_000) and value["avg"] == Duration(80_000)


def test_unscaled_log2_buckets() -> None:
    value = hist_value(plan("hist"), {"slots": {1: 1, 2: 1, 3: 2}, "stats": stats(4, 15, 1, 6)})
    assert value["buckets"] == [(0, 2, 1), (2, 4, 1), (4, 8, 2)]
    assert (value["p50"], value["p90"], value["p99"]) == (4, 6, 6)


LHIST = plan("lhist", lhist=(0, 1000, 100))


def test_lhist_buckets_with_underflow_and_overflow() -> None:
    value = hist_value(LHIST, {"slots": {0: 1, 1: 2, 5: 3, 11: 4},
                               "stats": stats(10, 20_000, -5, 5000)})
    assert value["buckets"] == [(None, 0, 1), (0, 100, 2), (400, 500, 3), (1000, None, 4)]
    assert value["p50"] == 500
    assert value["p99"] == 5000  # the overflow bucket has no upper bound: the max is one


def test_empty_hist_has_null_stats() -> None:
    value = hist_value(HIST_US, {"slots": {}, "stats": None})
    assert value == {"count": 0, "sum": None, "min": None, "max": None, "avg": None,
                     "p50": None, "p90": None, "p99": None, "buckets": []}


def test_stats_value_is_typed() -> None:
    p = plan("stats", "size", "bytes")
    assert stats_value(p, stats(2, 3000, 1000, 2000)) == {
        "count": 2, "sum": Size(3000), "min": Size(1000), "max": Size(2000), "avg": Size(1500)}
    assert stats_value(p, stats(0, 0, 0, 0))["avg"] is None


def test_agg_result_in_the_display_unit() -> None:
    view = build_view(RawAgg(HIST_US, [({}, {"slots": SLOTS, "stats": STATS})]))
    out = agg_result(view).to_json()
    assert (out["kind"], out["unit"], out["keys"], out["total_rows"]) == ("hist", "us", [], 1)
    value = out["rows"][0]["value"]
    assert value == {"count": 10, "sum": 800, "min": 0.5, "max": 700, "avg": 80,
                     "p50": 2, "p90": 16, "p99": 700,
                     "buckets": [{"low": 0, "high": 2, "count": 5},
                                 {"low": 8, "high": 16, "count": 4},
                                 {"low": 512, "high": 1024, "count": 1}]}


def test_agg_result_of_lhist_keeps_open_edges() -> None:
    p = plan("lhist", "duration", "ms", 10**6, lhist=(0, 10 * 10**6, 10**6))
    view = build_view(RawAgg(p, [({}, {"slots": {0: 1, 11: 1}, "stats": stats(2, 0, 0, 0)})]))
    buckets = agg_result(view).to_json()["rows"][0]["value"]["buckets"]
    assert buckets == [{"low": None, "high": 0, "count": 1}, {"low": 10, "high": None, "count": 1}]


def test_sum_of_durations_in_its_unit() -> None:
    p = plan("sum", "duration", "ms", 10**6, keys=[COMM])
    out = agg_result(build_view(RawAgg(p, [({"comm": "a"}, 2_500_000)]))).to_json()
    assert out["rows"] == [{"key": {"comm": "a"}, "value": 2.5}]


def count_rows() -> list[tuple[dict[str, Any], Any]]:
    return [({"comm": "a"}, 3), ({"comm": "c"}, 10), ({"comm": "b"}, 10), ({"comm": "d"}, 7)]


def test_rows_sorted_largest_first_ties_by_key() -> None:
    view = build_view(RawAgg(plan("count", keys=[COMM]), count_rows()))
    assert [(r.key["comm"], r.value) for r in view.rows] == [("b", 10), ("c", 10), ("d", 7),
                                                            ("a", 3)]


def test_top_truncates_the_json_but_counts_every_row() -> None:
    view = build_view(RawAgg(plan("count", keys=[COMM], top=2), count_rows()))
    out = agg_result(view).to_json()
    assert out["top"] == 2 and out["total_rows"] == 4
    assert [r["key"]["comm"] for r in out["rows"]] == ["b", "c"]
    assert view.field("total") == 30 and len(view.field("top")) == 4


def test_hist_rows_sort_by_count_and_stats_by_sum() -> None:
    hist = plan("hist", keys=[COMM])
    few = {"slots": {1: 1}, "stats": stats(1, 1, 1, 1)}
    many = {"slots": {1: 9}, "stats": stats(9, 9, 1, 1)}
    view = build_view(RawAgg(hist, [({"comm": "few"}, few), ({"comm": "many"}, many)]))
    assert [r.key["comm"] for r in view.rows] == ["many", "few"]
    st = plan("stats", keys=[COMM])
    view = build_view(RawAgg(st, [({"comm": "small"}, stats(5, 10, 1, 3)),
                                  ({"comm": "big"}, stats(1, 99, 99, 99))]))
    assert [r.key["comm"] for r in view.rows] == ["big", "small"]


@pytest.mark.parametrize(("kind", "expected"), [("min", 1), ("max", 3), ("avg", 2)])
def test_single_stat_kinds(kind: str, expected: int) -> None:
    view = build_view(RawAgg(plan(kind), [({}, stats(3, 6, 1, 3))]))
    assert view.rows[0].value == expected and view.field("value") == expected


def test_unkeyed_view_exposes_its_stats() -> None:
    view = build_view(RawAgg(HIST_US, [({}, {"slots": SLOTS, "stats": STATS})]))
    assert view.field("p99") == Duration(700 * US) and view.field("count") == 10
    empty = AggView(HIST_US, [])
    assert empty.field("p99") is None and empty.field("count") == 0


def test_row_short_names() -> None:
    row = Row({"syscall_name(args.id)": "read", "str(args.filename)": "/etc"}, 3)
    assert row.field("syscall_name") == "read" and row.field("filename") == "/etc"
    assert row.field("value") == 3
    with pytest.raises(KeyError):
        row.field("nope")


# --- known bugs of results.py (kept here until they are fixed) ------------------------------

def test_total_of_a_single_stat_aggregation() -> None:
    view = build_view(RawAgg(plan("max", keys=[COMM]), [({"comm": "a"}, stats(3, 6, 1, 3))]))
    assert view.field("total") == 3


def test_count_of_an_unkeyed_count() -> None:
    view = build_view(RawAgg(plan("count"), [({}, 5)]))
    assert view.field("count") == 5


def test_agg_result_is_typed() -> None:
    view = build_view(RawAgg(HIST_US, [({}, {"slots": SLOTS, "stats": STATS})]))
    value = agg_result(view).rows[0].value
    assert isinstance(value, HistValue)
    assert (value.p99, value.min, value.buckets[0]) == (700, 0.5, Bucket(0, 2, 5))
    st = plan("stats", "size", "KiB", 1024, keys=[COMM])
    row = agg_result(build_view(RawAgg(st, [({"comm": "a"}, stats(2, 3072, 1024, 2048))]))).rows[0]
    assert row == AggregationRow({"comm": "a"}, StatsValue(2, 3, 1, 2, 1.5))


def test_events_result_keeps_the_rows_and_counts_those_past_the_limit() -> None:
    probe = "tracepoint:syscalls:sys_enter_openat"
    rows = [{"comm": "a"}, {"comm": "b"}]
    out = events_result(RawEvents(EventPlan(0, probe, "opens", [COMM], 2), rows, 5))
    assert out == EventsResult(probe, "opens", ("comm",), tuple(rows), 3, 5)
    unlimited = events_result(RawEvents(EventPlan(0, probe, "opens", [COMM], None), rows, 5))
    assert unlimited.dropped == 0 and unlimited.seen == 5
