"""Which user stacks are walked through libc by its unwind table: at tracepoints, raw
tracepoints and perf samples when the kernel offers it (Features.user_unwind); never at
uprobes (their caller is spliced from the return address instead), never where the feature
is off — there the C keeps the plain frame-pointer walk, byte for byte.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.compile.pipeline import Compiled, compile_step, placeholder_values
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.features import Features
from bpfrun.kernel.tracefs import FakeKernel

TRACEFS = FIXTURES / "tracefs"
UNWIND = FakeKernel(TRACEFS, features=Features(user_unwind=True))
PLAIN = FakeKernel(TRACEFS)
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
UNWOUND_CALL = "bpfrun_stack_id(ctx, BPF_F_USER_STACK | BPFRUN_UNWIND)"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compiled(kernel: FakeKernel, probe: str, by: str = "ustack") -> Compiled:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(f"""\
        steps:
          - id: s
            probes:
              - probe: {probe}
                aggregate: [{{id: c, count: true, by: [{by}]}}]
        """))
    rb = load_runbook("t.yaml")
    step = rb.steps[0]
    return compile_step(rb, step, resolve_params(rb, {}), placeholder_values(rb, step), kernel)


@pytest.mark.parametrize("probe", ["tracepoint:sched:sched_switch", "profile:hz:99",
                                   "rawtracepoint:sched_switch"])
def test_user_stacks_at_kernel_events_are_unwound(probe: str) -> None:
    c = compiled(UNWIND, probe)
    assert c.program.unwind_user
    assert UNWOUND_CALL in c.c_text
    assert "static __always_inline long bpfrun_unwind_user(" in c.c_text
    assert "BPF_ARRAY(bpfrun_unwind_rows, struct bpfrun_unwind_row, BPFRUN_UNWIND_ROWS);" \
        in c.c_text


def test_kernel_stacks_keep_the_plain_walk() -> None:
    c = compiled(UNWIND, "tracepoint:sched:sched_switch", by="kstack")
    assert not c.program.unwind_user
    assert "bpfrun_unwind" not in c.c_text and "bpfrun_stack_id(ctx, 0)" in c.c_text


def test_uprobes_splice_their_caller_instead() -> None:
    c = compiled(UNWIND, f"uprobe:{sys.executable}:malloc")
    assert not c.program.unwind_user
    assert "bpfrun_stack_id(ctx, BPF_F_USER_STACK);" in c.c_text
    assert "bpfrun_unwind" not in c.c_text


def test_without_the_feature_the_c_is_the_plain_walk() -> None:
    c = compiled(PLAIN, "tracepoint:sched:sched_switch")
    assert not c.program.unwind_user
    assert "bpfrun_stack_id(ctx, BPF_F_USER_STACK);" in c.c_text
    assert "bpfrun_unwind" not in c.c_text and "BPFRUN_UNWIND" not in c.c_text


def test_a_span_unwinds_at_its_begin_and_copies_the_id_at_its_end() -> None:
    Path("t.yaml").write_text(HEAD + textwrap.dedent("""\
        steps:
          - id: s
            span:
              begin: {probe: tracepoint:sched:sched_switch, key: args.prev_pid}
              end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
              aggregate: [{id: c, sum: duration, by: [begin.ustack]}]
        """))
    rb = load_runbook("t.yaml")
    step = rb.steps[0]
    c = compile_step(rb, step, resolve_params(rb, {}), placeholder_values(rb, step), UNWIND)
    assert c.program.unwind_user and c.c_text.count(UNWOUND_CALL) == 1
