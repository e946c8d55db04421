"""syscall_nr("name"): a system call's number on the kernel's architecture, as a constant, so a
kernel predicate can leave out the calls that wait (`begin.arg1 in [syscall_nr("futex")]`)."""

from __future__ import annotations

import pytest
from helpers.paths import FIXTURES

from bpfrun.compile.cexpr import ExprCompiler, ProbeCtx, Scope
from bpfrun.compile.cvalue import CompileError, Unbound
from bpfrun.expr.parser import parse
from bpfrun.kernel.tracefs import FakeKernel

KERNEL = FakeKernel(FIXTURES / "tracefs")


def compile_expr(text: str, arch: str = "x86_64", **params: object) -> str:
    scope = Scope(ProbeCtx("rawtracepoint", "rawtracepoint:sys_enter", None),
                  {"params": params, "steps": {"prev": {"call": Unbound("prev.call")}}},
                  arch=arch)
    return ExprCompiler(scope).value(parse(text)).code


def test_a_name_is_its_number_on_this_architecture() -> None:
    assert compile_expr('arg1 == syscall_nr("futex")') == "(ctx->args[1] == 202LL /* futex */)"
    assert compile_expr('arg1 == syscall_nr("futex")', arch="aarch64") == (
        "(ctx->args[1] == 98LL /* futex */)")


def test_in_over_names_leaves_out_the_waiting_calls() -> None:
    code = compile_expr('!(arg1 in [syscall_nr("futex"), syscall_nr("poll")])')
    assert code == "(!((ctx->args[1] == 202LL /* futex */) || (ctx->args[1] == 7LL /* poll */)))"


def test_a_call_this_architecture_lacks_matches_nothing() -> None:
    code = compile_expr('arg1 == syscall_nr("poll")', arch="aarch64")
    assert code == "((s64)ctx->args[1] == (s64)-1LL /* poll: none on aarch64 */)"


def test_a_param_names_the_call_and_folds() -> None:
    assert compile_expr("syscall_nr(params.call) == 39", call="getpid") == "1"  # folded: true


def test_an_earlier_steps_value_is_bound_at_run_time() -> None:
    assert "bound at run time" in compile_expr("arg1 == syscall_nr(steps.prev.call)")


@pytest.mark.parametrize(("text", "message"), [
    ('syscall_nr("futx")', "no system call is named 'futx'; did you mean futex?"),
    ("syscall_nr(arg1)", "syscall_nr() takes the name of a system call"),
    ("syscall_nr()", "syscall_nr() takes the name of a system call"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        compile_expr(text)
