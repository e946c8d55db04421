"""User-space expressions over results: nulls, typed units, rows, templates."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.program import AggPlan, KeyField
from bpfrun.expr.evaluate import EvalError, Evaluator, display, render_template
from bpfrun.expr.parser import parse, parse_template
from bpfrun.runtime.collect import AggView, Row
from bpfrun.units import Duration, Size

MS = 1_000_000


def slow_by() -> AggView:
    keys = [KeyField("k0", "args.next_comm", "str", "str", 16),
            KeyField("k1", "args.prev_comm", "str", "str", 16)]
    plan = AggPlan("slow_by", "count", "agg_slow_by", None, keys, "int", None, 1, 10, None)
    return AggView(plan, [Row({"args.next_comm": "fusion", "args.prev_comm": "hog"}, 24),
                          Row({"args.next_comm": "bash", "args.prev_comm": "swapper/0"}, 3)])


def dist(p99: Duration | None) -> AggView:
    plan = AggPlan("dist", "hist", "agg_dist", "agg_dist_stats", [], "duration", "us", 1000,
                   None, None)
    rows = [] if p99 is None else [Row({}, {"count": 10, "p99": p99, "max": p99})]
    return AggView(plan, rows)


def names(**extra: Any) -> dict[str, Any]:
    return {"params": {"threshold": Duration(MS), "comm": "fusion", "limit": 5},
            "steps": {"runq": {"slow": True, "victim": None}},
            "slow_by": slow_by(), "dist": dist(Duration(3 * MS)), **extra}


def ev(text: str, **extra: Any) -> tuple[Any, list[str]]:
    e = Evaluator(names(**extra))
    return e.eval(parse(text)), e.null_seen


def truth(text: str, **extra: Any) -> bool:
    return Evaluator(names(**extra)).truth(parse(text))


# --- null -----------------------------------------------------------------------------------

def test_comparison_with_null_is_false_and_remembered() -> None:
    assert ev("steps.runq.victim == \"x\"") == (False, ["steps.runq.victim"])
    assert ev("steps.runq.victim != \"x\"") == (True, ["steps.runq.victim"])
    for op in ("<", "<=", ">", ">="):
        value, seen = ev(f"dist.p99 {op} params.threshold", dist=dist(None))
        assert value is False and seen == ["dist.p99"]


def test_null_against_null() -> None:
    assert ev("steps.runq.victim == null")[0] is True
    assert ev("steps.runq.victim != null")[0] is False
    assert ev("params.comm == null") == (False, [])


def test_null_propagates_through_fields_and_arithmetic() -> None:
    assert ev("steps.runq.victim.foo")[0] is None
    assert ev("dist.p99 * 2", dist=dist(None))[0] is None
    assert ev("len(steps.runq.victim)")[0] is None


def test_null_in_conditions() -> None:
    assert truth("steps.runq.victim") is False
    assert truth("steps.runq.victim || steps.runq.slow") is True
    assert truth("steps.runq.slow && dist.p99 > 1ms", dist=dist(None)) is False


def test_empty_unkeyed_aggregation_has_null_stats() -> None:
    value, seen = ev("dist.p99", dist=dist(None))
    assert value is None and seen == ["dist.p99"]
    assert ev("dist.count", dist=dist(None))[0] == 0


# --- typed values ---------------------------------------------------------------------------

def test_durations_compare_across_units() -> None:
    assert truth("dist.p99 > params.threshold")
    assert truth("dist.p99 == 3000us") and truth("dist.p99 < 3000001ns")
    assert truth("1s == 1000ms") and truth("1m > 59s")
    assert truth("dist.p99 > 0")  # zero needs no unit


def test_sizes_compare_with_sizes() -> None:
    assert truth("4KiB == 4096B") and truth("1MB < 1MiB")
    with pytest.raises(EvalError, match="cannot compare a size with a duration"):
        ev("4KiB > 1ms")


def test_duration_against_a_plain_number_is_an_error() -> None:
    with pytest.raises(EvalError, match="cannot compare a duration with a number") as info:
        ev("dist.p99 > 1000")
    assert info.value.node.offset == 0


def test_unit_arithmetic() -> None:
    assert ev("dist.p99 + 1ms")[0] == Duration(4 * MS)
    assert ev("dist.p99 - params.threshold")[0] == Duration(2 * MS)
    assert ev("dist.p99 * 2")[0] == Duration(6 * MS) == ev("2 * dist.p99")[0]
    assert ev("dist.p99 / 2")[0] == Duration(1_500_000)
    assert ev("dist.p99 / params.threshold")[0] == 3  # a ratio, not a duration
    assert ev("7ms / 2ms")[0] == 3.5
    assert ev("4KiB + 1KiB")[0] == Size(5120)


@pytest.mark.parametrize("text", ["dist.p99 + 5", "5 - dist.p99", "dist.p99 * 1ms",
                                  "4KiB + 1ms", "2 / dist.p99"])
def test_meaningless_unit_arithmetic(text: str) -> None:
    with pytest.raises(EvalError, match="cannot use"):
        ev(text)


def test_division_by_zero_is_no_value() -> None:
    assert ev("params.limit / 0")[0] is None
    assert ev("dist.p99 / 0")[0] is None
    assert ev("dist.p99 % 0")[0] is None


# --- rows, fields and indexes ---------------------------------------------------------------

def test_top_row_key_by_its_dotted_expression() -> None:
    assert ev("slow_by.top[0].args.next_comm")[0] == "fusion"
    assert ev("slow_by.top[1].args.prev_comm")[0] == "swapper/0"
    assert ev("slow_by.top[0].value")[0] == 24
    assert ev("slow_by.top[-1].value")[0] == 3
    assert ev("slow_by.top[0][\"args.next_comm\"]")[0] == "fusion"


def test_short_field_name_of_a_key() -> None:
    assert ev("slow_by.top[0].next_comm")[0] == "fusion"


def test_index_out_of_range_is_null() -> None:
    value, seen = ev("slow_by.top[5].args.next_comm")
    assert value is None and seen == ["slow_by.top[5]"]
    assert truth("slow_by.top[5].value > 1") is False


def test_misspelled_key_is_an_error_naming_the_keys() -> None:
    with pytest.raises(EvalError) as info:
        ev("slow_by.top[0].args.nxet_comm")
    assert str(info.value) == ("no field 'args.nxet_comm' "
                               "(it has: args.next_comm, args.prev_comm)")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(EvalError, match=r"unknown name 'dsit' \(known here: dist, params, "):
        ev("dsit.p99")


def test_dict_fields() -> None:
    assert ev("params.comm")[0] == "fusion" and ev("params[\"comm\"]")[0] == "fusion"
    with pytest.raises(EvalError, match="'params' has no 'comn'"):
        ev("params.comn")


def test_in_list() -> None:
    assert truth("slow_by.top[0].args.prev_comm in [\"hog\", \"x\"]")
    assert not truth("steps.runq.victim in [\"hog\"]")
    assert truth("dist.p99 in [1ms, 3ms]")


# --- functions ------------------------------------------------------------------------------

def test_functions() -> None:
    assert ev("len(slow_by.top)")[0] == 2 and ev("len(slow_by)")[0] == 2
    assert ev("len(params.comm)")[0] == 6
    assert ev("str(dist.p99)")[0] == "3ms" and ev("str(true)")[0] == "true"
    assert ev("startswith(params.comm, \"fus\")")[0] is True
    assert ev("max(dist.p99, 1ms, steps.runq.victim)")[0] == Duration(3 * MS)
    assert ev("min(steps.runq.victim)")[0] is None


@pytest.mark.parametrize(("text", "message"), [
    ("len(5)", "len() of number: it takes a list or a string"),
    ("len()", "len() takes 1 argument"),
    ("startswith(\"a\")", "startswith() takes 2 arguments"),
    ("max(1ms, 5)", "max() of values of different kinds"),
    ("nope(1)", "unknown function 'nope'"),
])
def test_function_misuse_is_an_eval_error(text: str, message: str) -> None:
    with pytest.raises(EvalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ev(text)


# --- templates ------------------------------------------------------------------------------

def render(text: str, **extra: Any) -> str:
    return render_template(tuple(parse_template(text)), names(**extra))


def test_template_renders_durations_readably() -> None:
    assert render("p99 run-queue latency is ${{ dist.p99 }} (limit ${{ params.threshold }})") \
        == "p99 run-queue latency is 3ms (limit 1ms)"
    assert render("${{ dist.p99 }}", dist=dist(Duration(1_500))) == "1.5us"
    assert render("${{ dist.p99 + 250us }}") == "3.25ms"


def test_template_renders_other_values() -> None:
    assert render("${{ slow_by.top[0].args.prev_comm }} held the CPU") == "hog held the CPU"
    assert render("${{ steps.runq.victim }}/${{ steps.runq.slow }}") == "null/true"
    assert render("${{ 4KiB * 3 }}") == "12KiB"
    assert render("no expressions") == "no expressions"


def test_display() -> None:
    assert display(None) == "null" and display(False) == "false"
    assert display(2 / 3) == "0.6667" and display(["a", "b"]) == "a;b"
    assert display(Duration(90 * 10**9)) == "90s"
    assert display(1312004.6) == "1312005" and display(9999.4) == "9999"  # rates: no 1.3e+06
