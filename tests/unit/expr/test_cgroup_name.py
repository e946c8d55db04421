"""cgroup_name(): a finding names the service/container/pod of a `cgroup` key by the name
the run took on its host (issue #17); expr itself never reads the host."""

from __future__ import annotations

import pytest

from bpfrun.expr.evaluate import CGROUP_NAMES, EvalError, Evaluator, render_template
from bpfrun.expr.parser import parse, parse_template


def names(cid: int) -> str:
    return {8: "unit checkout.service"}.get(cid, f"cgroup {cid} (gone)")


def test_an_id_by_the_runs_name() -> None:
    local = {"row": {"cgroup": 8}, CGROUP_NAMES: names}
    text = render_template(parse_template("${{ cgroup_name(row.cgroup) }} waited"), local)
    assert text == "unit checkout.service waited"
    assert Evaluator(local).eval(parse("cgroup_name(9)")) == "cgroup 9 (gone)"


def test_without_names_the_id_and_no_data_stays_no_data() -> None:
    assert Evaluator({}).eval(parse("cgroup_name(8)")) == "cgroup 8"
    assert Evaluator({"x": None}).eval(parse("cgroup_name(x)")) is None


def test_a_runbook_cannot_reach_the_namer_by_name() -> None:
    with pytest.raises(EvalError, match="takes 1 argument"):
        Evaluator({CGROUP_NAMES: names}).eval(parse("cgroup_name(1, 2)"))
    with pytest.raises(EvalError, match="unknown name"):
        Evaluator({CGROUP_NAMES: names}).eval(parse("cgroup_names"))
