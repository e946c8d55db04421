"""Kernel-side expressions compiled to C: type errors at file:line:col, folding, escaping.

Everything is compiled through the real pipeline (load → check → lower → emit) against the
tracepoint formats recorded from this kernel (tests/fixtures/tracefs), so no root is needed.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import FIXTURES

from bpfrun.compile.cexpr import CVal, ExprCompiler, ProbeCtx, Scope, const_c
from bpfrun.compile.pipeline import Compiled, compile_step, placeholder_values
from bpfrun.errors import MachineError, ValidationError
from bpfrun.expr.nodes import Node, unparse
from bpfrun.expr.parser import parse
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.tracefs import FakeKernel, Kernel
from bpfrun.units import Duration

TRACEFS = FIXTURES / "tracefs"
KERNEL = FakeKernel(TRACEFS)
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
PARAMS = """\
params:
  s: {type: string, default: ""}
  thr: {type: duration, default: 1ms}
  num: {type: int, default: 3}
  big: {type: size, default: 4KiB}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # diagnostics name the file as given: t.yaml


def compile_all(body: str, params: dict[str, str] | None = None, kernel: Kernel = KERNEL,
                values: dict[str, dict[str, Any]] | None = None) -> list[Compiled]:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body))
    rb = load_runbook("t.yaml")
    p = resolve_params(rb, params or {})
    return [compile_step(rb, s, p, values if values is not None else placeholder_values(rb, s),
                         kernel) for s in rb.steps]


def probe_body(where: str, probe: str = "tracepoint:syscalls:sys_enter_write",
               agg: str = "{id: hits, count: true}") -> str:
    """A runbook with one probe; its `where` is the 13th line of the file (col 16)."""
    return PARAMS + textwrap.dedent(f"""\
        steps:
          - id: s
            probes:
              - probe: {probe}
                where: {where}
                aggregate:
                  - {agg}
        """)


def c_of(where: str, params: dict[str, str] | None = None, **kw: Any) -> str:
    return compile_all(probe_body(where, **kw), params)[0].c_text


def handler(c: str) -> str:
    """The body of the first probe handler of a program."""
    start = c.index("static __always_inline int bpfrun_s_probe")
    return c[start:c.index("\n}\n", start)]


def error(body: str, params: dict[str, str] | None = None, kernel: Kernel = KERNEL) -> str:
    """The first diagnostic: its `file:line:col: error: message` line and its hint."""
    with pytest.raises(ValidationError) as info:
        compile_all(body, params, kernel)
    d = info.value.diagnostics[0]
    head = d.render(info.value.sources).splitlines()[0]
    return head + (f" | hint: {d.hint}" if d.hint else "")


SPAN = PARAMS + """\
steps:
  - id: s
    span:
      begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid}
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - {id: slow, count: true, where: WHERE}
"""


# --- type errors at their position ----------------------------------------------------------

def test_string_compared_with_number() -> None:
    assert error(probe_body("comm == 1")) == (
        "t.yaml:13:16: error: cannot compare a string with a number"
        " | hint: strings are written in double quotes")


def test_unknown_field_lists_the_real_fields_of_the_tracepoint() -> None:
    msg = error(probe_body('str(args.filename) == "x"'))
    assert msg.startswith("t.yaml:13:20: error: tracepoint:syscalls:sys_enter_write has no "
                          "field 'filename' | hint: ")
    # Bookkeeping fields such as __syscall_nr are left out of the list.
    assert msg.endswith("fields of tracepoint:syscalls:sys_enter_write: fd, buf, count")


def test_misspelled_field_suggests_the_close_one() -> None:
    msg = error(probe_body('str(args.filname) == "x"',
                           probe="tracepoint:syscalls:sys_enter_openat"))
    assert "t.yaml:13:20: error: tracepoint:syscalls:sys_enter_openat has no field 'filname'" in msg
    assert "hint: did you mean 'filename'? fields of" in msg


def test_duration_compared_with_a_plain_number_asks_for_a_unit() -> None:
    # The where is in a flow mapping on line 15: the caret is on `duration > 1000`.
    assert error(SPAN.replace("WHERE", "duration > 1000")) == (
        "t.yaml:15:42: error: cannot compare a duration with a number"
        " | hint: durations compare with durations: write a unit, e.g. 1ms or 250us")


def test_duration_param_against_a_plain_number_asks_for_a_unit_too() -> None:
    assert error(probe_body("pid > params.thr")) == (
        "t.yaml:13:16: error: cannot compare a number with a duration"
        " | hint: durations compare with durations: write a unit, e.g. 1ms or 250us")


def test_duration_outside_a_span_end() -> None:
    assert error(probe_body("duration > 1ms")) == (
        "t.yaml:13:16: error: `duration` exists only on the end side of a span")
    begin_side = SPAN.replace("key: args.pid}", "key: args.pid, where: duration > 1ms}")
    assert error(begin_side.replace("WHERE", "true")).startswith(
        "t.yaml:12:75: error: `duration` exists only on the end side of a span")


def test_named_field_on_a_raw_tracepoint() -> None:
    assert error(probe_body("args.prev_pid == 1", probe="rawtracepoint:sched_switch")) == (
        "t.yaml:13:16: error: args.prev_pid: only tracepoints have named fields "
        "(rawtracepoint:sched_switch gives arg0..arg5)")


def test_pointer_compared_with_string_hints_str() -> None:
    assert error(probe_body('args.buf == "x"')) == (
        "t.yaml:13:16: error: cannot compare a pointer with a string"
        ' | hint: read the string first: str(args.<field>) == "..."')


def test_unknown_function() -> None:
    assert error(probe_body("strlen(comm) > 3")) == (
        "t.yaml:13:16: error: unknown function 'strlen' in a kernel expression"
        " | hint: kernel functions: str, startswith, syscall_name, syscall_nr, tcp_state, ntop, "
        "argv, task_cgroup")


def test_position_inside_a_quoted_scalar_skips_the_quote() -> None:
    assert error(probe_body("'pid == \"x\"'")).startswith(
        "t.yaml:13:17: error: cannot compare a number with a string")


@pytest.mark.parametrize(("where", "message"), [
    ('"a" < "b"', "strings compare only with == and !="),
    ("!comm", "! needs a condition, not a string"),
    ("-comm == 1", "cannot negate a string"),
    ("comm", "a condition must be true or false, not a string"),
    ("pid + comm > 1", "cannot use + on a number and a string"),
    ("pid == 1 << 64", "a shift must be by 0 to 63 bits"),
    ("pid == 18446744073709551616", "18446744073709551616 does not fit in 64 bits"),
    ("pid == 4294967296 * 4294967296", "(4294967296 * 4294967296) does not fit in 64 bits"),
    ("pid / 0 == 1", "division by zero"),
    ("kstack == 1", "cannot compare a stack with a number"),
    ("args.fd[0] == 1", "indexing is not available in kernel expressions"),
    ("arg0 == 1", "tracepoints name their fields: write args.<field>, not arg0"),
    ("retval == 1", "retval exists only at kretprobe/uretprobe probes"),
    ("x == 1", "unknown name 'x'"),
    ("args == 1", "`args` needs a field: write args.<name>"),
    ("pid == null", "null cannot be used in a kernel expression"),
    ("startswith(comm, comm)", 'startswith(string, "prefix") needs a constant prefix'),
])
def test_more_type_errors(where: str, message: str) -> None:
    assert error(probe_body(f"'{where}'")).split(": error: ")[1].split(" | ")[0] == message


# --- constant folding -----------------------------------------------------------------------

FILTER = "'params.s == \"\" || comm == params.s'"


def test_empty_param_folds_the_filter_away() -> None:
    body = handler(c_of(FILTER))
    assert "if (" not in body.split("/* aggregation")[0]  # no predicate at all
    assert "bpf_get_current_comm" not in body


def test_set_param_compiles_to_a_byte_comparison() -> None:
    body = handler(c_of(FILTER, {"s": "ab"}))
    assert "BPFRUN_READ_COMM();" in body
    assert ('if (!(/* "ab" */ ((u8)bpfrun_comm[0] == 97) && ((u8)bpfrun_comm[1] == 98) && '
            "(bpfrun_comm[2] == 0))) return 0;") in body


def test_predicate_folded_to_false_drops_the_probe_work() -> None:
    c = c_of("params.thr > 1ms")
    assert "lookup_or_try_init" not in c and "bpfrun_s_probe" in c


@pytest.mark.parametrize(("where", "code"), [
    ("params.num * 2 == pid", "(6LL == (BPFRUN_PID_TGID() >> 32))"),
    ("pid == -params.num", "((s64)(BPFRUN_PID_TGID() >> 32) == (s64)-3LL)"),
    ("true && pid == 1", "((BPFRUN_PID_TGID() >> 32) == 1LL)"),
    ("pid == 1 || 2 > 1", None),  # always true: no predicate
    ("!(params.num == 3) || pid == 2", "((BPFRUN_PID_TGID() >> 32) == 2LL)"),
    ("args.count > params.big / 4", None),  # a size with a number: an error, see below
])
def test_folding(where: str, code: str | None) -> None:
    if where.startswith("args.count"):
        assert "cannot compare a number with a size" in error(probe_body(f"'{where}'"))
        return
    body = handler(c_of(f"'{where}'"))
    guard = [line.strip() for line in body.splitlines() if line.strip().startswith("if (!")]
    assert guard == ([] if code is None else [f"if (!{code}) return 0;"])


# --- literals, units and operators ----------------------------------------------------------

def test_durations_compile_to_nanoseconds() -> None:
    c = compile_all(SPAN.replace("WHERE", "duration > 1ms && duration < params.thr * 3"))[0]
    assert "if (!((duration > 1000000ULL) && (duration < 3000000ULL))) break;" in c.c_text


def test_sizes_compile_to_bytes() -> None:
    c = c_of("'str(args.buf, 16) != \"\" && args.count * 1B > 4KiB'",
             agg="{id: hits, count: true}")
    assert "(args->count * 1ULL) > 4096ULL" in c


def test_signed_field_compares_signed() -> None:
    body = handler(c_of("args.ret < 0", probe="tracepoint:syscalls:sys_exit_write"))
    assert "if (!(args->ret < 0LL)) return 0;" in body
    assert "    s64 ret;" in c_of("args.ret < 0", probe="tracepoint:syscalls:sys_exit_write")


def test_const_c() -> None:
    assert const_c(Duration(1_000_000)) == "1000000ULL"
    assert const_c(5) == "5LL" and const_c(-5) == "-5LL"
    assert const_c(2**64 - 1) == "18446744073709551615ULL"
    assert const_c(-(2**63)) == "(-9223372036854775807LL - 1)"
    assert const_c(True) == "1"


def test_in_list_of_numbers() -> None:
    body = handler(c_of("'pid in [1, 2]'"))
    assert ("if (!(((BPFRUN_PID_TGID() >> 32) == 1LL) || "
            "((BPFRUN_PID_TGID() >> 32) == 2LL))) return 0;") in body


def test_in_a_longer_list_of_numbers_is_one_switch() -> None:
    # clang lowers a switch to bit tests and a binary search; the chain of == tested every
    # option in turn. Duplicates fold (a switch refuses them), the order does not matter.
    body = handler(c_of("'pid in [7, 3, 9, 3, 1]'"))
    assert ("    int in1 = 0;\n    switch ((u64)((BPFRUN_PID_TGID() >> 32))) "
            "{ case 1ULL: case 3ULL: case 7ULL: case 9ULL: in1 = 1; }\n"
            "    if (!in1) return 0;") in body


def test_the_same_in_test_in_one_block_is_computed_once() -> None:
    body = handler(c_of("'pid in [1, 2, 3, 4] || (comm == \"x\" && pid in [4, 3, 2, 1])'"))
    assert body.count("switch") == 1 and "(in1 || (" in body


def test_in_keeps_the_chain_for_negative_or_few_options() -> None:
    # A negative option compares differently as u64 (u32 fields widen without sign).
    assert "switch" not in handler(c_of("'pid in [1, 2, 3, -4]'"))
    assert "switch" not in handler(c_of("'pid in [1, 2, 3]'"))


def test_syscall_numbers_in_a_switch_keep_their_names() -> None:
    body = handler(c_of("'args.id in [syscall_nr(\"read\"), syscall_nr(\"write\"), "
                        "syscall_nr(\"futex\"), syscall_nr(\"poll\")]'",
                        probe="tracepoint:raw_syscalls:sys_enter"))
    assert "case 0ULL: /* read */ case 1ULL: /* write */ case 7ULL: /* poll */" in body


def test_in_list_of_strings_reads_the_string_once() -> None:
    body = handler(c_of("'str(args.buf) in [\"a\", \"b\", \"c\", \"d\", \"e\"]'"))
    assert body.count("bpf_probe_read_user_str") == 1 and body.count("char s") == 1
    assert '/* "e" */ ((u8)s1[0] == 101) && (s1[1] == 0)' in body


def test_comm_is_read_once_per_predicate() -> None:
    body = handler(c_of("'comm != \"bpfrun\" && comm == params.s'", {"s": "x"}))
    assert body.count("BPFRUN_READ_COMM();") == 1


def test_comm_and_pid_are_read_once_per_event_across_predicates_and_keys() -> None:
    # The where and the key both use comm and pid: the handler declares one cache of each,
    # and the template defines the macros that fill it on first use.
    c = c_of("'comm != \"bpfrun\" && pid != 0'", agg="{id: procs, count: true, by: [pid, comm]}")
    body = handler(c)
    assert body.count("char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;") == 1
    assert body.count("u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;") == 1
    assert "__builtin_memcpy(&k.k1, bpfrun_comm, 16);" in body
    assert "bpf_get_current_comm" not in body and "bpf_get_current_pid_tgid" not in body
    assert c.count("bpf_get_current_comm(&bpfrun_comm, sizeof(bpfrun_comm))") == 1
    assert c.count("bpfrun_pid_tgid = bpf_get_current_pid_tgid()") == 1


def test_in_list_with_constant_options_folds() -> None:
    assert "if (" not in handler(c_of("'params.num in [1, 3]'")).split("/* aggregation")[0]


def test_startswith_checks_no_terminator() -> None:
    body = handler(c_of("'startswith(comm, \"ba\")'"))
    assert ('if (!(/* "ba" */ ((u8)bpfrun_comm[0] == 98) && ((u8)bpfrun_comm[1] == 97))) '
            "return 0;") in body


def test_longer_literal_than_comm_matches_its_kernel_truncation() -> None:
    body = handler(c_of("'comm == \"0123456789abcdefXYZ\"'"))
    assert "bpfrun_comm[14] == 101" in body and "bpfrun_comm[15]" not in body


def test_string_to_string_comparison_uses_the_bounded_helper() -> None:
    c = c_of("'str(args.buf, 8) == comm'")
    assert "if (!bpfrun_streq(s1, bpfrun_comm, 8)) return 0;" in handler(c)
    assert "static __always_inline int bpfrun_streq(" in c


# --- str(): user or kernel memory -----------------------------------------------------------

def test_str_of_a_syscall_pointer_reads_user_memory() -> None:
    body = handler(c_of("'str(args.filename) == \"/etc/passwd\"'",
                        probe="tracepoint:syscalls:sys_enter_openat"))
    assert "bpf_probe_read_user_str(&s1, 128, (void *)args->filename);" in body


def test_str_of_a_pointer_elsewhere_reads_kernel_memory() -> None:
    body = handler(c_of("'str(args.ptr, 32) == \"x\"'", probe="tracepoint:kmem:kmalloc"))
    assert "bpf_probe_read_kernel_str(&s1, 32, (void *)args->ptr);" in body


def test_data_loc_string_is_found_through_its_offset() -> None:
    body = handler(c_of("'str(args.filename) == \"/bin/sh\"'",
                        probe="tracepoint:sched:sched_process_exec"))
    assert ("bpf_probe_read_kernel_str(&s1, 128, (void *)((char *)args + "
            "(args->filename & 0xFFFF)));") in body


def test_str_of_a_kprobe_argument_reads_kernel_memory() -> None:
    kernel = FakeKernel(TRACEFS, kprobes=True, functions=["do_sys_openat2"])
    c = compile_all(probe_body("'str(arg1) == \"x\"'", probe="kprobe:do_sys_openat2"),
                    kernel=kernel)[0].c_text
    assert "bpf_probe_read_kernel_str(&s1, 128, (void *)PT_REGS_PARM2(ctx));" in c


def test_str_of_a_uprobe_argument_reads_user_memory() -> None:
    c = c_of("'str(arg0) == \"x\"'", probe="uprobe:/bin/sh:main")
    assert "bpf_probe_read_user_str(&s1, 128, (void *)PT_REGS_PARM1(ctx));" in c


def test_missing_probe_is_a_machine_error() -> None:
    with pytest.raises(MachineError, match="tracepoint syscalls:sys_enter_nope does not exist"):
        compile_all(probe_body("pid > 1", probe="tracepoint:syscalls:sys_enter_nope"))


# --- untrusted strings never reach the C raw ------------------------------------------------

EVIL = [
    'a"b',
    "back\\slash\\",
    "new\nline\r",
    "*/ int x; /*",
    '"); system("rm -rf /"); ("',
    "??/ trigraph",
    "\x00nul",
    "é€\U0001f600",
]


def skeleton(c: str) -> str:
    """The C with the text of comments and string literals dropped and numbers made 0.

    Two programs with the same skeleton differ only inside comments, string literals and
    numbers: whatever a value did, it did not add code.
    """
    out: list[str] = []
    i = 0
    while i < len(c):
        if c.startswith("/*", i):
            end = c.index("*/", i + 2)
            out.append("/**/")
            i = end + 2
        elif c[i] == '"':
            j = i + 1
            while c[j] != '"':
                assert c[j] != "\n", "a string literal runs over a line end"
                j += 2 if c[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(c[i])
            i += 1
    return re.sub(r"\d+", "0", "".join(out))


USES = ("'comm == params.s || str(args.buf) != params.s || startswith(comm, params.s) "
        "|| comm in [params.s, \"x\"]'")


@pytest.mark.parametrize("value", EVIL, ids=range(len(EVIL)))
def test_param_strings_only_become_bytes(value: str) -> None:
    evil = c_of(USES, {"s": value})
    benign = c_of(USES, {"s": "a" * len(value.encode())})
    assert skeleton(evil) == skeleton(benign)
    assert value not in evil
    assert '"); system("' not in evil


@pytest.mark.parametrize("value", EVIL, ids=range(len(EVIL)))
def test_captured_strings_only_become_bytes(value: str) -> None:
    body = PARAMS + """\
steps:
  - id: first
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        aggregate:
          - {id: calls, count: true, by: [comm]}
    capture:
      victim: calls.top[0].comm
  - id: second
    probes:
      - probe: tracepoint:sched:sched_switch
        where: args.prev_comm == steps.first.victim
        aggregate:
          - {id: hits, count: true}
"""
    evil = compile_all(body, values={"first": {"victim": value}})[1].c_text
    benign = compile_all(body, values={"first": {"victim": "a" * len(value.encode())}})[1]
    assert skeleton(evil) == skeleton(benign.c_text)
    assert value not in evil


def test_skeleton_notices_code() -> None:
    assert skeleton('a /* x */ "y\\"" 12') != skeleton('a /* x */ "y" 12 + 1')


# --- values from earlier steps --------------------------------------------------------------

FOLLOW = PARAMS + """\
steps:
  - id: first
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        aggregate:
          - {id: calls, count: true, by: [pid]}
    capture:
      top: calls.top[0].pid
  - id: second
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        where: pid == steps.first.top
        aggregate:
          - {id: hits, count: true}
"""


def test_captured_number_is_bound_as_a_constant() -> None:
    c = compile_all(FOLLOW, values={"first": {"top": 4242}})[1].c_text
    assert "if (!((BPFRUN_PID_TGID() >> 32) == 4242LL)) return 0;" in c


def test_capture_compiled_ahead_is_a_placeholder() -> None:
    c = compile_all(FOLLOW)[1].c_text
    assert "== 0 /* steps.first.top: bound at run time */" in c


@pytest.mark.parametrize(("value", "message"), [
    (2.5, "steps.first.top is a fraction (2.5), which kernel code cannot use"),
    ([1, 2], "steps.first.top is a list, which kernel code cannot use"),
])
def test_captured_values_kernel_code_cannot_hold(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        compile_all(FOLLOW, values={"first": {"top": value}})
    assert info.value.diagnostics[0].message == message


def test_whole_number_float_capture_is_an_integer() -> None:
    c = compile_all(FOLLOW, values={"first": {"top": 7.0}})[1].c_text
    assert "== 7LL)" in c


# --- the compiler on its own ----------------------------------------------------------------

def compile_expr(text: str) -> tuple[CVal, list[str]]:
    fmt = KERNEL.tracepoint("sched", "sched_switch")
    comp = ExprCompiler(Scope(ProbeCtx("tracepoint", "tracepoint:sched:sched_switch", fmt),
                              {"params": {}, "steps": {}}))
    v = comp.value(parse(text))
    return v, comp.pre


def test_chararray_field_is_read_in_place() -> None:
    v, pre = compile_expr('args.prev_comm == "swapper/0"')
    assert pre == [] and "((u8)args->prev_comm[7] == 47)" in v.code


def test_field_types() -> None:
    assert compile_expr("args.prev_pid")[0].type == "int"
    assert compile_expr("args.prev_comm")[0].type == "str"
    assert compile_expr("syscall_name(args.prev_pid)")[0].decode == "syscall"


# --- unparse: the canonical text of a node reads back as the same node ----------------------

def shape(node: Any) -> Any:
    """A node without its positions."""
    if isinstance(node, tuple):
        return tuple(shape(n) for n in node)
    if not isinstance(node, Node):
        return node
    return (type(node).__name__, *(shape(getattr(node, f.name)) for f in dataclasses.fields(node)
                                   if f.name not in ("offset", "length")))


@pytest.mark.parametrize("text", [
    '"a\\"b\\\\c\\nd\\te\\0f\\x01\\x7f é */"',
    "(-x).f", "(-x)[0]", "!(x in [1])", "-(-x)", "(a < (x in [1]))", "(x in [1]) in [true]",
    "str(args.filename, 8) in [\"a\", \"b\"]", "a.b[c.d].e", "1.f", "((a + b) * c)",
    "top[0].args.next_comm", "5ns", "4096B", "null", "!true",
])
def test_unparse_round_trips(text: str) -> None:
    node = parse(text)
    assert shape(parse(unparse(node))) == shape(node)


def test_unparse_escapes_line_breaks() -> None:
    text = unparse(parse('"a\\nb\\r"'.replace("\\r", "\\x0d")))
    assert text == '"a\\nb\\x0d"' and "\n" not in text


# --- positions inside block scalars ---------------------------------------------------------

def test_position_inside_a_block_scalar() -> None:
    literal = probe_body("WHERE").replace("WHERE", '|\n          pid == "x"')
    assert error(literal).startswith("t.yaml:14:11: error: cannot compare a number with a string")
    folded = probe_body("WHERE").replace("WHERE",
                                         '>-\n          comm != "x"\n          && pid == "x"')
    assert error(folded).startswith("t.yaml:15:14: error: cannot compare a number with a string")
