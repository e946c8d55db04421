"""Every independent problem of one kernel expression, each at its own place, in one pass —
and no second problem caused by the first (issue #13: "7 problems in one expression
reports 1").

Compiled through the real pipeline (load → check → lower) against the recorded tracepoint
formats of tests/fixtures/tracefs, so no root is needed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.compiling import compile_one, load

from bpfrun.compile.cexpr import CompileError, CompileErrors, problems_of
from bpfrun.errors import ValidationError
from bpfrun.expr.nodes import Literal

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\nparams:\n  n: {type: int, default: 3}\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(body: str) -> list[str]:
    """`line:col: message` of every diagnostic of the runbook's steps, in order."""
    rb, params = load(HEAD + textwrap.dedent(body))
    out: list[str] = []
    for step in rb.steps:
        try:
            compile_one(rb, step, params)
        except ValidationError as e:
            out += [f"{d.loc.line}:{d.loc.col}: {d.message}" for d in e.diagnostics if d.loc]
    return out


def where(expr: str, probe: str = "tracepoint:syscalls:sys_enter_read") -> list[str]:
    """The problems of a probe's `where` (line 10, the expression from column 16)."""
    return problems(f"""\
        steps:
          - id: s
            probes:
              - probe: {probe}
                where: '{expr}'
                aggregate: [{{id: c, count: true}}]
        """)


def test_every_problem_of_one_where_at_its_own_column_in_order() -> None:
    expr = ('comm == 5 && args.nosuch > 1 && foo(3) && pid == "a" && -comm > 1'
            ' && args.count / 0 > 1 && nosuch')
    assert where(expr) == [
        "10:17: cannot compare a string with a number",
        "10:30: tracepoint:syscalls:sys_enter_read has no field 'nosuch'",
        "10:49: unknown function 'foo' in a kernel expression",
        "10:59: cannot compare a number with a string",
        "10:73: cannot negate a string",
        "10:86: division by zero",
        "10:108: unknown name 'nosuch'",
    ]


@pytest.mark.parametrize("expr", [
    "args.nosuch > 1",  # not also "cannot compare"
    "comm == nosuch",
    "-nosuch > 1",
    "!(args.nosuch + 1 == \"x\")",
    "str(nosuch) == 5",
    "startswith(nosuch, 5)",
    "syscall_name(nosuch) < \"a\"",
    "nosuch in [1, \"a\"]",
])
def test_a_problem_causes_no_second_one(expr: str) -> None:
    found = where(expr)
    assert len(found) == 1, found
    assert "nosuch" in found[0]


def test_arguments_of_an_unknown_function_are_checked_too() -> None:
    assert where("foo(args.nosuch, bar(2)) > 1") == [
        "10:17: unknown function 'foo' in a kernel expression",
        "10:21: tracepoint:syscalls:sys_enter_read has no field 'nosuch'",
        "10:34: unknown function 'bar' in a kernel expression",
    ]


def test_each_option_of_in_that_does_not_fit_is_named() -> None:
    assert where('pid in [1, "a", nosuch, "b"]') == [
        "10:28: cannot compare a number with a string",
        "10:33: unknown name 'nosuch'",
        "10:41: cannot compare a number with a string",
    ]


def test_keys_values_and_wheres_of_aggregations_report_every_problem() -> None:
    assert problems("""\
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_read
                aggregate:
                  - {id: c, count: true, by: ['args.fdd + comm', 'bar(args.nope, 1)']}
                  - {id: d, sum: 'args.cnt + tid * "x"'}
                  - {id: e, count: true, where: 'args.fd == "x" || nosuch2'}
        """) == [
        "11:40: tracepoint:syscalls:sys_enter_read has no field 'fdd'",
        "11:59: unknown function 'bar' in a kernel expression",
        "11:63: tracepoint:syscalls:sys_enter_read has no field 'nope'",
        "12:27: tracepoint:syscalls:sys_enter_read has no field 'cnt'",
        "12:38: cannot use * on a number and a string",
        "13:42: cannot compare a number with a string",
        "13:60: unknown name 'nosuch2'",
    ]


def test_an_error_in_a_where_leaves_the_keys_and_value_checked_too() -> None:
    # Alone, and as members of a map shared by aggregations keyed alike (lower/sharing.py).
    assert problems("""\
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_exit_write
                aggregate:
                  - {id: a, count: true, by: [args.nosuch], where: comm == 5}
                  - {id: b, stats: args.missing, by: [pid, comm], where: args.ret == "x"}
                  - {id: c, count: true, by: [pid, comm], where: pid > 0}
        """) == [
        "11:60: cannot compare a string with a number",
        "11:39: tracepoint:syscalls:sys_exit_write has no field 'nosuch'",
        "12:66: cannot compare a number with a string",
        "12:28: tracepoint:syscalls:sys_exit_write has no field 'missing'",
    ]


def test_a_span_end_reports_its_own_and_its_begin_values_problems() -> None:
    assert problems("""\
        steps:
          - id: s
            span:
              begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid}
              end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
              aggregate:
                - {id: c, count: true, where: 'begin.args.nosuch > 1 && args.nope == 2'}
        """) == [
        "12:40: tracepoint:sched:sched_wakeup has no field 'nosuch'",
        "12:65: tracepoint:sched:sched_switch has no field 'nope'",
    ]


def test_problems_of_a_group() -> None:
    one, two = (CompileError(m, Literal(i, 1, "int", i)) for i, m in enumerate("ab"))
    group = CompileErrors([one, two])
    assert (str(group), group.node, problems_of(group)) == ("a", one.node, [one, two])
    assert problems_of(one) == [one]


def test_valid_expressions_compile_as_before() -> None:
    assert where('comm == "x" && pid in [1, 2, 3, 4] && args.count > params.n') == []
