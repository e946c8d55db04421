"""User-space expressions (a step's `when`, thresholds, captures, messages, regression gates):
every problem of one expression at its own place — unknown names, fields, params, steps and
functions, and calls with the wrong number of arguments (issue #13)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bpfrun.errors import ValidationError
from bpfrun.expr.evaluate import EvalError, Evaluator, call_problem
from bpfrun.expr.nodes import Call
from bpfrun.expr.parser import parse
from bpfrun.frontend.runbooks import check_file, clean_steps, load_runbook

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\nparams:\n  n: {type: int, default: 3}\n"
STEP = """\
    steps:
      - id: s
        probes:
          - probe: tracepoint:syscalls:sys_enter_read
            aggregate: [{id: c, count: true}]
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(tail: str) -> list[str]:
    """`line:col: message | hint` of every diagnostic; `tail` follows the step's probes
    (its first line is line 11)."""
    Path("t.yaml").write_text(HEAD + textwrap.dedent(STEP)
                            + textwrap.indent(textwrap.dedent(tail), "    "))
    with pytest.raises(ValidationError) as info:
        load_runbook("t.yaml")
    return [f"{d.loc.line}:{d.loc.col}: {d.message}" + (f" | {d.hint}" if d.hint else "")
            for d in info.value.diagnostics if d.loc]


def test_every_problem_of_a_threshold_when() -> None:
    when = ("c.totl > 5 && nosuch > 1 && foo(c.total) > 1 && len(c, 1) > 0"
            " && params.nope > 1 && min() > 0")
    assert problems(f"""\
        thresholds:
          - id: slow
            when: '{when}'
        """) == [
        "13:16: 'c' has no field 'totl' | did you mean 'total'?",
        "13:30: unknown name 'nosuch' here | known: c, elapsed, series",
        "13:44: unknown function 'foo' | known: cgroup_name, code, code_via, hottest, "
        "leak_suspect, len, max, min, over, own_frame, percent, startswith, str, task_wakers, "
        "trend, value_at, via, waker, wakers",
        "13:64: len() takes 1 argument",
        "13:81: unknown param 'nope' | known: n",
        "13:100: min() takes one or more arguments",
    ]


def test_every_problem_of_a_capture_and_a_message() -> None:
    assert problems("""\
        capture:
          top: 'c.rowz[0] + nope3 + params.nope4 + percent(c.total) + cgroup_nam(1)'
        thresholds:
          - id: slow
            when: c.total > 1
            message: '${{ strr(c.total) }} and ${{ over(c) }}'
        """) == [
        "12:13: 'c' has no field 'rowz' | did you mean 'rows'?",
        "12:25: unknown name 'nope3' here | known: c, elapsed, series",
        "12:33: unknown param 'nope4' | known: n",
        "12:48: percent() takes 2 arguments",
        "12:67: unknown function 'cgroup_nam' | did you mean 'cgroup_name'?",
        "16:23: unknown function 'strr' | did you mean 'str'?",
        "16:48: over() takes 2 arguments",
    ]


def test_a_regression_gate_calls_known_functions() -> None:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(STEP)
                              + "regressions:\n  - {id: r, when: 'maxx(s.c.total, 1) > 1'}\n")
    with pytest.raises(ValidationError) as info:
        load_runbook("t.yaml")
    [d] = info.value.diagnostics
    assert (d.message, d.hint) == ("unknown function 'maxx'", "did you mean 'max'?")


@pytest.mark.parametrize(("text", "problem"), [
    ("len(1)", None), ("max(1, 2, 3)", None), ("over(1, 2)", None),
    ("len()", "len() takes 1 argument"), ("startswith(1)", "startswith() takes 2 arguments"),
    ("min()", "min() takes one or more arguments"), ("nope(1)", "unknown function 'nope'"),
])
def test_call_problem(text: str, problem: str | None) -> None:
    node = parse(text)
    assert isinstance(node, Call)
    assert call_problem(node) == problem


def test_the_evaluator_says_the_same() -> None:
    with pytest.raises(EvalError, match=r"^min\(\) takes one or more arguments$"):
        Evaluator({}).eval(parse("min()"))
    with pytest.raises(EvalError, match=r"^unknown function 'nope'"):
        Evaluator({}).eval(parse("nope(1)"))


def test_wrong_names_in_expressions_leave_a_step_to_the_kernel_checks() -> None:
    """A step whose only problems are params./steps. names in kernel expressions, or any
    problem of its thresholds and captures (which lowering does not read), is still checked
    against the kernel, so the rest of each expression is checked too; the places already
    reported go with it, so that lowering does not report them again."""
    Path("t.yaml").write_text(HEAD + textwrap.dedent("""\
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_read
                where: comm == 5 && params.nope > 1
                aggregate: [{id: c, count: true, by: [steps.t.c.total]}]
            thresholds: [{id: slow, when: nosuch > 1}]
          - id: t
            when: nosuch
            probes:
              - probe: tracepoint:syscalls:sys_enter_read
                aggregate: [{id: c, count: true}]
          - id: u
            probes:
              - probe: tracepoint:syscalls:sys_enter_read
                wehre: 1
        """))
    checked = check_file("t.yaml")
    clean = clean_steps(checked)
    assert clean == {"s"}  # t: a problem in its `when`; u: an unknown key
    assert clean.reported == {"s": frozenset({(10, 29), (11, 47), (12, 35)})}
