"""own_frame, code, via, code_via and hottest: findings name the program's own code."""

from __future__ import annotations

from typing import Any

import pytest

from bpfrun.compile.program import AggPlan, KeyField
from bpfrun.expr.evaluate import EvalError, Evaluator, render_template
from bpfrun.expr.frames import is_own, plain_function
from bpfrun.expr.parser import parse, parse_template
from bpfrun.result import FramedStack, StackFrame
from bpfrun.runtime.collect import AggView, Row
from bpfrun.units import Duration

MS = 1_000_000


def stack(*frames: StackFrame) -> FramedStack:
    return FramedStack([f"{f.function} [{f.module}]" for f in frames], frames)


VDSO = StackFrame("__vdso_clock_gettime", 0x5d, module="vdso")
CLOCK = StackFrame("__GI___clock_gettime", 0x2b, "clock_gettime.c", 42, "libc.so.6")
SPIN = StackFrame("bpfr_busy_spin_us", None, "/src/tests/workloads/oncpu.c", 24, "oncpu",
                  inlined=True)
SPINNER = StackFrame("bpfr_spinner", 0x61, "/src/tests/workloads/oncpu.c", 36, "oncpu")
START = StackFrame("start_thread", 0x2f1, None, None, "libc.so.6")
SPIN_STACK = stack(VDSO, CLOCK, SPIN, SPINNER, START)
MAIN = StackFrame("main", 0x4d, "memleak_main.c", 44, "memleak_main")
LEAK_STACK = stack(MAIN, StackFrame("__libc_start_call_main", 0x7a, module="libc.so.6"))
SLEEP = stack(StackFrame("__GI___clock_nanosleep", 0x4e, module="libc.so.6"),
              StackFrame("usleep", 0x2c, module="libc.so.6"))


def ev(text: str, **names: Any) -> Any:
    return Evaluator(names).eval(parse(text))


def test_own_frame_is_the_programs_innermost_named_frame_in_full() -> None:
    assert ev("own_frame(s)", s=SPIN_STACK) == \
        "bpfr_busy_spin_us (oncpu.c:24) [oncpu] (inlined)"
    assert ev("own_frame(s)", s=LEAK_STACK) == "main+0x4d (memleak_main.c:44) [memleak_main]"
    assert ev("own_frame(s)", s=SLEEP) is None  # only libc: no own frame


def test_code_and_via_name_the_function_its_line_and_what_it_called() -> None:
    assert ev("code(s)", s=SPIN_STACK) == "bpfr_busy_spin_us (oncpu.c:24)"
    assert ev("via(s)", s=SPIN_STACK) == "clock_gettime"  # glibc's __GI___ alias dropped
    assert ev("code_via(s)", s=SPIN_STACK) == "bpfr_busy_spin_us (oncpu.c:24) via clock_gettime"
    assert ev("via(s)", s=LEAK_STACK) is None  # the own frame is the innermost
    assert ev("code_via(s)", s=LEAK_STACK) == "main (memleak_main.c:44)"


def test_code_without_own_frame_names_the_innermost_user_frame_and_its_module() -> None:
    assert ev("code(s)", s=SLEEP) == "__GI___clock_nanosleep [libc.so.6]"
    assert ev("via(s)", s=SLEEP) is None


def test_stacks_without_frames_are_read_from_their_names() -> None:
    names = ["__vdso_clock_gettime [[vdso]]", "clock_gettime [libc.so.6]",
             "bpfr_hot_function [spin]", "main [spin]"]
    assert ev("code_via(s)", s=names) == "bpfr_hot_function [spin] via clock_gettime"
    assert ev("code(s)", s=["do_sys_open", "x64_sys_call"]) is None  # kernel only


def test_own_rule_excludes_kernel_vdso_anon_and_system_libraries() -> None:
    def own(module: str) -> bool:
        return is_own(StackFrame("f", module=module))
    assert own("oncpu") and own("libmyapp.so") and own("libz.so.1")
    for system in ("kernel", "vdso", "anon", "", "libc.so.6", "ld-linux-x86-64.so.2",
                   "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libm.so.6",
                   "libc-2.31.so"):
        assert not own(system), system
    assert not is_own(StackFrame(None, module="oncpu", reason="no symbol"))


def test_plain_function_drops_glibc_aliases() -> None:
    assert plain_function("__GI___clock_nanosleep") == "clock_nanosleep"
    assert plain_function("__libc_malloc") == "malloc"
    assert plain_function("__pthread_mutex_lock") == "pthread_mutex_lock"
    assert plain_function("memcpy@@GLIBC_2.14") == "memcpy"


def stacks_agg(rows: list[Row], vtype: str = "int") -> AggView:
    keys = [KeyField("k0", "ustack", "ustack", "stack", 8)]
    kind = "count" if vtype == "int" else "sum"
    return AggView(AggPlan("stacks", kind, "agg", None, keys, vtype, None, 1, 10, None), rows)


def test_hottest_groups_rows_by_their_own_function() -> None:
    # The spin loop's samples land on many addresses: no single stack is the hottest, but
    # one function is.
    other_line = stack(StackFrame("bpfr_busy_spin_us", None, "oncpu.c", 25, "oncpu",
                                  inlined=True), SPINNER, START)
    main = stack(StackFrame("main", 0x10, "oncpu.c", 70, "oncpu"))
    agg = stacks_agg([Row({"ustack": main}, 40), Row({"ustack": SPIN_STACK}, 35),
                      Row({"ustack": other_line}, 30)])
    hot = ev("hottest(stacks)", stacks=agg)
    assert hot["value"] == 65 and hot["code_via"] == \
        "bpfr_busy_spin_us (oncpu.c:24) via clock_gettime"
    assert ev("percent(hottest(stacks).value, stacks.total)", stacks=agg) == 61.9


def test_hottest_sums_durations_and_reads_begin_stacks() -> None:
    keys = [KeyField("b0", "begin.ustack", "ustack", "stack", 8)]
    plan = AggPlan("waits", "sum", "agg", None, keys, "duration", "ms", MS, 10, None)
    agg = AggView(plan, [Row({"begin.ustack": LEAK_STACK}, Duration(3 * MS)),
                         Row({"begin.ustack": SLEEP}, Duration(2 * MS)),
                         Row({"begin.ustack": LEAK_STACK[:1]}, Duration(1 * MS))])
    hot = ev("hottest(waits)", waits=agg)
    assert hot["value"] == Duration(4 * MS)  # the name-only copy is main [memleak_main] too
    assert ev("hottest(waits).code", waits=agg) == "main (memleak_main.c:44)"


def test_hottest_of_nothing_is_null_and_in_a_message() -> None:
    assert ev("hottest(stacks)", stacks=stacks_agg([])) is None
    parts = tuple(parse_template("in ${{ hottest(stacks).code_via }}"))
    agg = stacks_agg([Row({"ustack": SPIN_STACK}, 5)])
    assert render_template(parts, {"stacks": agg}) == \
        "in bpfr_busy_spin_us (oncpu.c:24) via clock_gettime"


def test_frame_functions_refuse_what_is_not_a_stack() -> None:
    with pytest.raises(EvalError, match=r"code\(\) takes a stack"):
        ev("code(3)")
    with pytest.raises(EvalError, match="takes an aggregation"):
        ev("hottest(s)", s=SPIN_STACK)
    with pytest.raises(EvalError, match="takes 1 argument"):
        ev("via(s, s)", s=SPIN_STACK)
    assert ev("code(s)", s=None) is None
