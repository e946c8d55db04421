"""value_at, leak_suspect and trend: a slow leak is found by what was never freed, not by a
count, and a leak that keeps growing is told from a cache that levels off."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.program import AggPlan, KeyField
from bpfrun.expr.evaluate import EvalError, Evaluator
from bpfrun.expr.parser import parse
from bpfrun.runtime.collect import AggView, Row
from bpfrun.units import Size

LEAK = ["main [memleak_main]", "__libc_start_call_main [libc.so.6]"]
CACHE = ["cache_put [app]", "main [app]"]
CHURN = ["handle [app]", "main [app]"]


def by_stack(agg_id: str, rows: dict[str, int], kind: str = "count",
             vtype: str = "int") -> AggView:
    stacks = {"LEAK": LEAK, "CACHE": CACHE, "CHURN": CHURN}
    keys = [KeyField("b0", "begin.ustack", "ustack", "stack", 8)]
    plan = AggPlan(agg_id, kind, "agg", None, keys, vtype, None, 1, 10, None)
    made = [Row({"begin.ustack": stacks[k]}, Size(v) if vtype == "size" else v)
            for k, v in rows.items()]
    return AggView(plan, sorted(made, key=lambda r: -int(getattr(r.value, "bytes", r.value))))


def ev(text: str, **names: Any) -> Any:
    return Evaluator(names).eval(parse(text))


def aggs(**extra: Any) -> dict[str, Any]:
    # The churning handler's many blocks in flight outnumber the leak's ten.
    return {"outstanding_blocks": by_stack("ob", {"CHURN": 40, "LEAK": 10}),
            "outstanding_bytes": by_stack("obb", {"CHURN": 4000, "LEAK": 10240}, "sum",
                                          "size"),
            "allocs": by_stack("a", {"CHURN": 90000, "LEAK": 10}),
            "freed": by_stack("f", {"CHURN": 89960}), **extra}


def test_value_at_reads_one_row_and_counts_a_missing_row_as_zero() -> None:
    names = aggs(s=LEAK)
    assert ev("value_at(allocs, s)", **names) == 10
    assert ev("value_at(freed, s)", **names) == 0
    assert ev("value_at(outstanding_bytes, s)", **names) == Size(10240)


def test_the_leak_suspect_is_the_stack_that_freed_nothing_whatever_its_count() -> None:
    names = aggs()
    assert ev("leak_suspect(outstanding_blocks, allocs, freed, 1)", **names) == LEAK
    # One freed block of ten is 10 %: a suspect only where that much freeing is allowed.
    names["freed"] = by_stack("f", {"CHURN": 89960, "LEAK": 1})
    assert ev("leak_suspect(outstanding_blocks, allocs, freed, 1)", **names) == []
    assert ev("leak_suspect(outstanding_blocks, allocs, freed, 10)", **names) == LEAK


def test_trend_tells_a_growing_leak_from_a_cache_that_levels_off() -> None:
    leak = [{"t": t, "malloc_bytes": 1024 * (t % 2) + 500, "freed_bytes": 500}
            for t in range(1, 11)]
    grown = ev('trend(series, "malloc_bytes", "freed_bytes")', series=leak)
    assert grown["gain"] == 5 * 1024 and grown["ticks"] == 10
    assert grown["per_second"] == 512.0
    assert grown["late_per_second"] == 2048 / 5  # ticks 6..10: two blocks in five seconds
    cache = [{"t": t, "malloc_bytes": 4096 if t <= 3 else 500, "freed_bytes": 500}
             for t in range(1, 11)]
    warmed = ev('trend(series, "malloc_bytes", "freed_bytes")', series=cache)
    assert warmed["gain"] > 0 and warmed["late_per_second"] == 0
    assert ev('trend(series, "malloc_bytes", "freed_bytes").per_second * 1B',
              series=leak) == Size(512)
    assert ev('trend(series, "a", "b").per_second', series=[]) is None


def test_misuse_is_an_error() -> None:
    with pytest.raises(EvalError, match="one `by:` key"):
        ev("value_at(a, 1)", a=AggView(AggPlan("a", "count", "m", None, [], "int", None, 1,
                                                None, None), [Row({}, 3)]))
    with pytest.raises(EvalError, match="takes an aggregation"):
        ev("value_at(3, 1)")
    with pytest.raises(EvalError, match="series"):
        ev('trend(3, "a", "b")')
    with pytest.raises(EvalError, match="takes 4 arguments"):
        ev("leak_suspect(a, b)", a=1, b=2)
