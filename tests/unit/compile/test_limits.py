"""Limit counters of histograms: the kernel counts the values above a limit only where a
threshold compares a percentile with it (or a message asks `over()`), and the C of every
other histogram is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_lower import one, probe_with

from bpfrun.compile.program import HIST_SLOTS, LIMIT_SLOT

PARAMS = "params:\n  limit: {type: size, default: 1000B}\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def with_threshold(when: str, agg: str = "{id: h, hist: args.count, unit: bytes}",
                   message: str = "") -> str:
    msg = f"        message: {message!r}\n" if message else ""
    return (PARAMS + probe_with(agg) + "    thresholds:\n      - id: t\n"
            f"        when: {when!r}\n{msg}")


def test_no_threshold_no_counter() -> None:
    c = one(probe_with("{id: h, hist: args.count, unit: bytes}"))
    assert c.program.aggs[0].limits == ()
    assert f"slots[{HIST_SLOTS + 1}]" in c.c_text and "(x > " not in c.c_text


def test_percentile_over_a_param_counts_the_values_above_it_in_the_same_entry() -> None:
    c = one(with_threshold("h.p99 > params.limit"))
    plan = c.program.aggs[0]
    assert (plan.limits, plan.limit_slot) == ((1000,), HIST_SLOTS + 1)
    assert f"slots[{HIST_SLOTS + 2}]" in c.c_text
    assert f"if (x > 1000ULL) h_{plan.map}->slots[{HIST_SLOTS + 1}] += 1;" in c.c_text
    assert c.c_text.count(f"{plan.map}.lookup(") == 1  # no lookup more


@pytest.mark.parametrize(("when", "limit"), [
    ("h.p99 > params.limit", 1000), ("h.p99 <= params.limit", 1000),
    ("h.p90 >= params.limit", 999), ("h.p50 < params.limit", 999),
    ("params.limit < h.p99", 1000), ("params.limit >= h.p99", 1000), ("params.limit > h.p99", 999),
    ("h.p99 > 2 * params.limit", 2000), ("h.p99 > 4KiB", 4096)])
def test_the_limit_counts_values_above_or_at_it_as_the_comparison_needs(
        when: str, limit: int) -> None:
    assert one(with_threshold(when)).program.aggs[0].limits == (limit,)


def test_limits_only_known_after_the_step_are_not_counted() -> None:
    c = one(with_threshold("h.p99 > h.p50 * 2 && h.max > 0"))
    assert c.program.aggs[0].limits == ()


def test_over_in_a_message_is_counted_too() -> None:
    c = one(with_threshold("h.count > 0", message="${{ over(h, 512B) }} over 512 bytes"))
    assert c.program.aggs[0].limits == (512,)


def test_a_keyed_histogram_counts_under_its_own_slot_per_key() -> None:
    c = one(with_threshold("h.top[0].p99 > params.limit",
                           "{id: h, hist: args.count, unit: bytes, by: [pid]}"))
    plan = c.program.aggs[0]
    assert (plan.limits, plan.limit_slot) == ((1000,), LIMIT_SLOT)
    assert f"k.slot = {LIMIT_SLOT}U;" in c.c_text


def test_an_lhist_counts_after_its_linear_buckets() -> None:
    c = one(with_threshold("h.p99 > params.limit",
                           "{id: h, lhist: args.count, min: 0, max: 2000, step: 100}"))
    plan = c.program.aggs[0]
    assert (plan.limits, plan.limit_slot) == ((1000,), 22)
    assert "slots[23]" in c.c_text
