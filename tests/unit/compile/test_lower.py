"""Lowering a step: maps per aggregation, keys, spans, events, fallbacks, struct layouts.

Compiled through the real pipeline against the recorded tracepoint formats of this kernel
(tests/fixtures/tracefs); nothing here needs root or BPF.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.compile.lower import Program
from bpfrun.compile.pipeline import Compiled, compile_step, placeholder_values
from bpfrun.errors import MachineError, ValidationError
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.resolve import parse_probe, resolve_probe
from bpfrun.kernel.tracefs import FakeKernel, Kernel

TRACEFS = FIXTURES / "tracefs"
KERNEL = FakeKernel(TRACEFS)
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
REPO = REPO


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compile_all(body: str, kernel: Kernel = KERNEL, path: str = "t.yaml",
                values: dict[str, dict[str, Any]] | None = None) -> list[Compiled]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(HEAD + textwrap.dedent(body))
    rb = load_runbook(path)
    params = resolve_params(rb, {})
    return [compile_step(rb, s, params, values or placeholder_values(rb, s), kernel)
            for s in rb.steps]


def one(body: str, kernel: Kernel = KERNEL) -> Compiled:
    return compile_all(body, kernel)[0]


def probe_with(aggs: str, probe: str = "tracepoint:syscalls:sys_enter_write",
               extra: str = "") -> str:
    return ("steps:\n  - id: s\n    probes:\n"
            f"      - probe: {probe}\n{extra}        aggregate:\n"
            + "".join(f"          - {a}\n" for a in aggs.split("\n") if a))


def maps(prog: Program) -> dict[str, str]:
    """map name → its declaration."""
    return {re.match(r"\w+\((\w+),", m)[1]: m for m in prog.maps}  # type: ignore[index]


def struct(prog: Program, name: str) -> str:
    return next(s for s in prog.structs if s.startswith(f"struct {name} "))


# --- aggregations ---------------------------------------------------------------------------

KINDS = """\
{id: c, count: true, by: [pid]}
{id: su, sum: args.count, by: [pid]}
{id: mi, min: args.count, by: [pid]}
{id: ma, max: args.count, by: [pid]}
{id: av, avg: args.count, by: [pid]}
{id: st, stats: args.count, by: [pid]}
{id: hi, hist: args.count, by: [pid]}
{id: li, lhist: args.count, min: 0, max: 1000, step: 100, by: [pid]}
"""


IDX = {a: i for i, a in enumerate(("c", "su", "mi", "ma", "av", "st", "hi", "li"))}


def name(agg: str) -> str:
    """Map names are unique by position: agg<index>_<id>."""
    return f"agg{IDX[agg]}_{agg}"


def hash_map(agg: str, value: str, size: int = 10240) -> str:
    return f"BPF_PERCPU_HASH({name(agg)}, struct bpfrun_{name(agg)}_key, {value}, {size});"


def test_map_kind_per_aggregation() -> None:
    m = maps(one(probe_with(KINDS)).program)
    for agg in ("c", "su"):
        assert m[name(agg)] == hash_map(agg, "u64")
    for agg in ("mi", "ma", "av", "st"):
        assert m[name(agg)] == hash_map(agg, "struct bpfrun_stats")
    for agg in ("hi", "li"):  # one entry per (key, slot), and the stats per key beside them
        assert m[name(agg)] == hash_map(agg, "u64", 81920)
        assert m[f"{name(agg)}_stats"] == (f"BPF_PERCPU_HASH({name(agg)}_stats, struct "
                                           f"bpfrun_{name(agg)}_key, struct bpfrun_stats, "
                                           "10240);")
    assert len(m) == 10


def test_unkeyed_aggregations_keep_their_value_types() -> None:
    m = maps(one(probe_with(KINDS.replace(", by: [pid]", ""))).program)
    # Without keys: one-entry per-CPU arrays, not hashes; a histogram keeps its buckets and
    # stats in that one entry.
    for agg, value in (("c", "u64"), ("su", "u64"), ("mi", "struct bpfrun_stats"),
                       ("st", "struct bpfrun_stats"), ("hi", f"struct bpfrun_{name('hi')}_hist")):
        assert m[name(agg)] == f"BPF_PERCPU_ARRAY({name(agg)}, {value}, 1);", agg
    assert f"{name('hi')}_stats" not in m


def test_aggregation_plans() -> None:
    plans = {a.id: a for a in one(probe_with(KINDS)).program.aggs}
    assert [p.kind for p in plans.values()] == ["count", "sum", "min", "max", "avg", "stats",
                                                "hist", "lhist"]
    assert plans["hi"].stats_map == "agg6_hi_stats" and plans["c"].stats_map is None
    assert plans["li"].lhist == (0, 1000, 100)
    assert all(p.value_type == "int" and [k.expr for k in p.keys] == ["pid"]
               for p in plans.values())


def test_hist_and_lhist_slots() -> None:
    c = one(probe_with(KINDS)).c_text
    assert "slot = bpf_log2l(x);" in c
    assert "slot = x < 0ULL ? 0 : (x >= 1000ULL ? 11 : (u32)((x - 0ULL) / 100ULL) + 1);" in c
    assert "struct bpfrun_agg6_hi_key { u64 k0; u32 slot; };" in c


def test_hist_of_a_duration_in_a_display_unit_keeps_nanoseconds() -> None:
    c = one("""\
        steps:
          - id: s
            span:
              begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid}
              end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
              aggregate:
                - {id: d, hist: duration, unit: us}
                - {id: l, lhist: duration, min: 0, max: 10ms, step: 100us, unit: us}
        """)
    plans = {a.id: a for a in c.program.aggs}
    assert (plans["d"].value_type, plans["d"].unit, plans["d"].scale) == ("duration", "us", 1000)
    assert plans["l"].lhist == (0, 10_000_000, 100_000)
    assert "slot = bpf_log2l(x / 1000ULL);" in c.c_text


def test_keys_of_each_kind() -> None:
    prog = one(probe_with(
        "{id: k, count: true, by: [comm, pid, kstack, ustack, 'str(args.buf, 32)']}")).program
    assert struct(prog, "bpfrun_agg0_k_key") == (
        "struct bpfrun_agg0_k_key { char k0[16]; u64 k1; u64 k2; u64 k3; char k4[32]; "
        "u32 tgid; };")
    keys = prog.aggs[0].keys
    assert [(k.expr, k.kind, k.vtype) for k in keys] == [
        ("comm", "str", "str"), ("pid", "int", "int"), ("kstack", "stack", "stack"),
        ("ustack", "ustack", "stack"), ("str(args.buf, 32)", "str", "str")]
    assert prog.uses_stacks


def test_stack_keys_take_stack_ids() -> None:
    c = one(probe_with("{id: k, count: true, by: [kstack, ustack]}")).c_text
    # A hash map of stacks by hash, not BPF_STACK_TRACE (whose bucket collisions lose stacks).
    assert "BPF_HASH(stacks, u64, struct bpfrun_stack, 16384);" in c
    assert "BPF_STACK_TRACE(" not in c and "get_stackid" not in c
    assert "k.k0 = bpfrun_stack_id(ctx, 0);" in c
    assert "k.k1 = bpfrun_stack_id(ctx, BPF_F_USER_STACK);" in c
    assert "k.tgid = BPFRUN_PID_TGID() >> 32;" in c  # user stacks symbolize per process


def test_kernel_stack_of_a_sample_in_user_mode_is_not_walked() -> None:  # x86-64 (the fake's)
    c = one(probe_with("{id: k, count: true, by: [kstack]}", probe="profile:hz:99")).c_text
    assert "k.k0 = BPFRUN_IN_USER_MODE(ctx) ? 0 /* none */ : bpfrun_stack_id(ctx, 0);" in c
    assert "#define BPFRUN_IN_USER_MODE(ctx)" in c
    tp = one(probe_with("{id: k, count: true, by: [kstack]}")).c_text  # always in the kernel
    assert "BPFRUN_IN_USER_MODE" not in tp


def test_stack_storage_grows_with_the_size_of_a_stack_aggregation() -> None:
    c = one(probe_with("{id: k, count: true, by: [kstack, ustack], size: 20000}"))
    assert c.program.stack_storage == 40000  # two stacks per key
    assert "BPF_HASH(stacks, u64, struct bpfrun_stack, 40000);" in c.c_text
    small = one(probe_with("{id: k, count: true, by: [ustack], size: 100}")).program
    assert small.stack_storage == 16384  # never below the default


def test_kernel_stack_alone_has_no_tgid() -> None:
    prog = one(probe_with("{id: k, count: true, by: [kstack]}")).program
    assert struct(prog, "bpfrun_agg0_k_key") == "struct bpfrun_agg0_k_key { u64 k0; };"


def test_aggregation_where_skips_only_that_aggregation() -> None:
    c = one(probe_with("{id: a, count: true, where: args.count > 10}\n{id: b, count: true}")).c_text
    first, second = c.split("/* aggregation b: count")
    assert "if (!(args->count > 10LL)) break;" in first.split("/* aggregation a: count")[1]
    assert "agg0_a" in first and "agg1_b" in second and "break;" not in second


def test_decoded_key() -> None:
    prog = one(probe_with("{id: k, count: true, by: [syscall_name(args.id)]}",
                          probe="tracepoint:raw_syscalls:sys_enter")).program
    assert prog.aggs[0].keys[0].decode == "syscall"


# --- spans ----------------------------------------------------------------------------------

OFFCPU = """\
    steps:
      - id: s
        span:
          begin: {probe: tracepoint:sched:sched_switch, key: args.prev_pid}
          end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
          aggregate:
            - {id: offcpu, sum: duration, by: [begin.args.prev_comm, begin.kstack]}
    """


def test_span_stores_exactly_the_begin_values_that_are_used() -> None:
    c = one(OFFCPU)
    prog = c.program
    assert struct(prog, "bpfrun_s_span_val") == (
        "struct bpfrun_s_span_val { u64 ts; char b0[16]; u64 b1; };")
    assert struct(prog, "bpfrun_s_span_key") == "struct bpfrun_s_span_key { u64 k0; };"
    assert "bpf_probe_read_kernel(&val.b0, 16, args->prev_comm);" in c.c_text
    assert "val.b1 = bpfrun_stack_id(ctx, 0);" in c.c_text
    assert "k.k0 = pv.b0" not in c.c_text  # a string is copied, not assigned
    assert "__builtin_memcpy(&k.k0, pv.b0, 16);" in c.c_text  # the program's own copy
    assert "k.k1 = pv.b1;" in c.c_text
    assert prog.pending_map == "pending_s"
    assert "BPF_HASH(pending_s, struct bpfrun_s_span_key, struct bpfrun_s_span_val, 10240);" \
        in prog.maps
    assert [k.expr for k in prog.aggs[0].keys] == ["begin.args.prev_comm", "begin.kstack"]


def test_span_end_runs_before_begin_on_the_same_probe() -> None:
    prog = one(OFFCPU).program
    assert len(prog.functions) == 1 and len(prog.attaches) == 1
    end, begin = (h for h in prog.handlers)
    assert end.comment.startswith("span end") and begin.comment.startswith("span begin")
    assert prog.functions[0].handlers == [end.name, begin.name]


def test_begin_user_stack_is_symbolized_in_the_begin_process() -> None:
    c = one(OFFCPU.replace("begin.kstack]", "begin.ustack]")).c_text
    assert "val.b2 = (BPFRUN_PID_TGID() >> 32);" in c
    assert "k.tgid = pv.b2;" in c


def test_composite_span_key() -> None:
    prog = one("""\
        steps:
          - id: io
            span:
              begin: {probe: tracepoint:block:block_rq_issue, key: [args.dev, args.sector]}
              end: {probe: tracepoint:block:block_rq_complete, key: [args.dev, args.sector]}
              aggregate:
                - {id: lat, hist: duration, unit: us}
        """).program
    assert struct(prog, "bpfrun_io_span_key") == "struct bpfrun_io_span_key { u64 k0; u64 k1; };"
    begin = next(h for h in prog.handlers if h.comment.startswith("span begin"))
    assert begin.body[3:5] == ["key.k0 = args->dev;", "key.k1 = args->sector;"]


def test_span_keys_must_match() -> None:
    with pytest.raises(ValidationError) as info:
        one("""\
            steps:
              - id: s
                span:
                  begin: {probe: "tracepoint:sched:sched_switch",
                          key: [args.prev_pid, args.prev_comm]}
                  end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
                  aggregate:
                    - {id: d, count: true}
            """)
    assert info.value.diagnostics[0].message == "span begin and end need keys of the same length"


def test_span_end_computes_duration_and_deletes_the_pending_entry() -> None:
    c = one(OFFCPU).c_text
    lines = [line.strip() for line in c.splitlines()]
    i = lines.index("struct bpfrun_s_span_val *pp = pending_s.lookup(&key);")
    assert lines[i:i + 5] == ["struct bpfrun_s_span_val *pp = pending_s.lookup(&key);",
                              "if (!pp) return 0;", "struct bpfrun_s_span_val pv = *pp;",
                              "pending_s.delete(&key);",
                              "u64 duration = bpf_ktime_get_ns() - pv.ts;"]
    assert "if (pending_s.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);" in c


# --- events ---------------------------------------------------------------------------------

EVENTS = """\
    steps:
      - id: s
        probes:
          - probe: tracepoint:syscalls:sys_enter_openat
            id: opens
            emit: [pid, comm, str(args.filename)]
            limit: 500
          - probe: tracepoint:syscalls:sys_enter_write
            emit: [args.count]
    """


def test_emit_with_limit() -> None:
    c = one(EVENTS)
    prog = c.program
    assert "if (!bpfrun_emit_allowed(0, 500)) break;" in c.c_text
    assert "bpfrun_emit_allowed(1, 0);" in c.c_text  # no limit: counted all the same
    assert "BPF_ARRAY(bpfrun_emitted, u64, 2);" in c.c_text
    assert struct(prog, "bpfrun_ev0") == (
        "struct bpfrun_ev0 { u32 probe; u64 f0; char f1[16]; char f2[128]; u32 tgid; };")
    ev = prog.events[0]
    assert (ev.index, ev.probe, ev.id, ev.limit) == (0, "tracepoint:syscalls:sys_enter_openat",
                                                     "opens", 500)
    assert [f.expr for f in ev.fields] == ["pid", "comm", "str(args.filename)"]
    assert prog.events[1].id == "events1" and prog.event_buffer == "ringbuf"
    assert "bpf_probe_read_user_str(&e->f2, 128, (void *)args->filename);" in c.c_text


# --- probes, fallbacks and the kernel -------------------------------------------------------

FALLBACK = """\
    steps:
      - id: s
        probes:
          - probe: kprobe:finish_task_switch
            fallbacks: [tracepoint:sched:nope, tracepoint:sched:sched_switch]
            aggregate:
              - {id: hits, count: true}
    """


def test_fallback_when_kprobes_are_missing() -> None:
    prog = one(FALLBACK, FakeKernel(TRACEFS, kprobes=False)).program
    (plan,) = prog.attaches
    assert (plan.kind, plan.target, plan.probe, plan.requested) == (
        "tracepoint", ("sched", "sched_switch"), "tracepoint:sched:sched_switch",
        "kprobe:finish_task_switch")
    assert plan.skipped[0] == "kprobes are not available on this kernel: CONFIG_KPROBES is off"
    assert plan.skipped[1].startswith("tracepoint sched:nope does not exist on this kernel")


def test_first_candidate_when_it_exists() -> None:
    kernel = FakeKernel(TRACEFS, kprobes=True, functions=["finish_task_switch"])
    (plan,) = one(FALLBACK, kernel).program.attaches
    assert (plan.kind, plan.probe, plan.skipped) == ("kprobe", "kprobe:finish_task_switch", [])
    assert "int bpfrun_s_probe1(struct pt_regs *ctx)" in one(FALLBACK, kernel).c_text


def test_no_usable_probe_names_what_is_missing() -> None:
    body = FALLBACK.replace("tracepoint:sched:sched_switch", "rawtracepoint:nope_tp")
    with pytest.raises(MachineError) as info:
        one(body)
    msg = info.value.message
    assert msg.startswith("step 's': no usable probe: kprobes are not available on this kernel")
    assert "tracepoint sched:nope does not exist on this kernel" in msg
    assert "raw tracepoint nope_tp does not exist on this kernel" in msg
    assert info.value.hint and "bpfrun probes" in info.value.hint


def test_missing_kprobe_function() -> None:
    kernel = FakeKernel(TRACEFS, kprobes=True, functions=["finish_task_switch.isra.0"])
    body = FALLBACK.replace("fallbacks: [tracepoint:sched:nope, tracepoint:sched:sched_switch]",
                            "fallbacks: [tracepoint:sched:sched_switch]")
    (plan,) = one(body, kernel).program.attaches
    assert plan.skipped == ["function finish_task_switch cannot be kprobed (not in "
                            "available_filter_functions) (did you mean "
                            "kprobe:finish_task_switch.isra.0?)"]


def test_probe_names_are_kernel_names() -> None:
    body = FALLBACK.replace("tracepoint:sched:nope", "tracepoint:sched:../../x")
    with pytest.raises(ValidationError) as info:
        one(body)
    assert "'../../x' is not a kernel name" in info.value.diagnostics[0].message


def test_tracepoint_struct_matches_the_format_file() -> None:
    prog = one(probe_with("{id: hits, count: true}", probe="tracepoint:sched:sched_switch")).program
    text = struct(prog, "bpfrun_tp_sched_sched_switch")
    fmt = KERNEL.tracepoint("sched", "sched_switch")
    assert fmt is not None
    for f in fmt.fields:
        assert (f"_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, "
                f"{f.name}) == {f.offset}, \"{f.name}\");") in text
    assert "    char prev_comm[16];\n    s32 prev_pid;" in text
    assert "    s64 prev_state;" in text
    assert text.startswith("struct bpfrun_tp_sched_sched_switch {\n    u8 __common[8];\n")


def test_tracepoint_struct_pads_gaps() -> None:
    prog = one(probe_with("{id: hits, count: true}", probe="tracepoint:block:block_rq_complete"))
    text = struct(prog.program, "bpfrun_tp_block_block_rq_complete")
    assert "    u32 dev;\n    u8 __pad1[4];\n    u64 sector;" in text
    assert ("_Static_assert(__builtin_offsetof(struct bpfrun_tp_block_block_rq_complete, "
            "sector) == 16, \"sector\");") in text


def test_unreadable_kernel_is_noted() -> None:
    from bpfrun.kernel.tracefs import UnreadableKernel

    c = one(probe_with("{id: hits, count: true, by: [args.whatever]}"), UnreadableKernel())
    assert c.program.unchecked == ["probe tracepoint:syscalls:sys_enter_write (kernel not "
                                   "readable)"]
    assert "k.k0 = args->whatever;" in c.c_text



@pytest.mark.parametrize(("text", "canonical"), [
    ("t:sched:sched_switch", "tracepoint:sched:sched_switch"),
    ("rt:sched_switch", "rawtracepoint:sched_switch"),
    ("kprobe:finish_task_switch.isra.0", "kprobe:finish_task_switch.isra.0"),
    ("uprobe:/usr/lib/libc.so.6:malloc", "uprobe:/usr/lib/libc.so.6:malloc"),
    ("usdt:/usr/bin/python3:python:fn", "usdt:/usr/bin/python3:python:fn"),
    ("profile:hz:99", "profile:hz:99"),
    ("software:page-faults:100", "software:page-faults:100"),
    ("interval:ms:500", "interval:ms:500"),
])
def test_probe_names(text: str, canonical: str) -> None:
    assert parse_probe(text).canonical == canonical


@pytest.mark.parametrize(("text", "message"), [
    ("sched_switch", "is not a probe; probes start with one of: tracepoint, "),
    ("tracepoint:sched", "does not have the shape tracepoint:CATEGORY:EVENT"),
    ("tracepoint:sched:sched switch", "'sched switch' is not a kernel name"),
    ("kprobe:vfs_read;", "'vfs_read;' is not a kernel name"),
    ("profile:hz:0", "does not have the shape profile:hz:99"),
    ("interval:hz:1", "does not have the shape interval:s:1"),
    ("software:bogus:1", "software events are cpu-clock, "),
])
def test_malformed_probe_names(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_probe(text)


def test_unreadable_kernel_assumes_probes_exist() -> None:
    from bpfrun.kernel.tracefs import UnreadableKernel

    res, reasons = resolve_probe(["kprobe:vfs_read", "tracepoint:a:b"], UnreadableKernel())
    assert res is not None and res.ref.kind == "kprobe" and not res.checked and reasons == []


def test_unlisted_kernel_functions_are_assumed_to_exist() -> None:
    # kprobes work, but available_filter_functions could not be read: do not guess "missing".
    res, _ = resolve_probe(["kprobe:vfs_read"], FakeKernel(TRACEFS, kprobes=True, functions=[]))
    assert res is not None and res.checked


def test_missing_tracepoint_suggests_near_names() -> None:
    res, reasons = resolve_probe(["tracepoint:sched:sched_swich"], KERNEL)
    assert res is None
    assert reasons == ["tracepoint sched:sched_swich does not exist on this kernel (did you "
                       "mean tracepoint:sched:sched_switch?)"]

# --- determinism ----------------------------------------------------------------------------

def test_compiling_twice_gives_the_same_bytes() -> None:
    runbook = REPO / "tests" / "runbooks" / "valid" / "runq-latency.yaml"
    texts = []
    for _ in range(2):
        rb = load_runbook(runbook)
        params = resolve_params(rb, {"comm": "x"})
        texts.append([compile_step(rb, s, params, placeholder_values(rb, s), KERNEL).c_text
                      for s in rb.steps])
    assert texts[0] == texts[1]


def test_same_bytes_whatever_the_hash_seed() -> None:
    code = ("import sys; from pathlib import Path; from bpfrun.kernel.tracefs import FakeKernel; "
            "from bpfrun.compile.pipeline import *; "
            "from bpfrun.frontend.runbooks import load_runbook; "
            "from bpfrun.frontend.params import resolve_params; "
            f"rb = load_runbook({str(REPO / 'runbooks' / 'syscalls.yaml')!r}); "
            "p = resolve_params(rb, {'comm': 'sh'}); "
            f"k = FakeKernel({str(TRACEFS)!r}); "
            "sys.stdout.write(''.join(compile_step(rb, s, p, placeholder_values(rb, s), k)"
            ".c_text for s in rb.steps))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}
                           ).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and "bpfrun_syscalls_probe" in outs.pop()


# --- once bugs, now fixed ---------------------------------------------------------------

def test_lhist_bounds_from_params() -> None:
    prog = one("""\
        params:
          step: {type: size, default: 4KiB}
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_enter_read
                aggregate:
                  - {id: l, lhist: args.count, min: 0, max: 64KiB, step: "${{ params.step }}"}
        """).program
    assert prog.aggs[0].lhist == (0, 65536, 4096)


def test_runbook_path_cannot_close_a_comment(tmp_path: Path) -> None:
    (c,) = compile_all(probe_with("{id: hits, count: true}"), path="x*/t.yaml")
    assert "x*/t.yaml" not in c.c_text


def test_aggregation_ids_cannot_collide_in_map_names() -> None:
    prog = one(probe_with("{id: lat, hist: args.count, by: [pid]}\n"
                          "{id: lat_stats, count: true, by: [pid]}")).program
    names = [m.split("(")[1].split(",")[0] for m in prog.maps]
    assert len(names) == len(set(names)) == 3


def test_kernel_expression_may_use_an_earlier_stat_when_compiled_ahead() -> None:
    c = compile_all("""\
        steps:
          - id: a
            probes:
              - probe: tracepoint:syscalls:sys_enter_write
                aggregate:
                  - {id: dist, hist: args.count}
          - id: b
            probes:
              - probe: tracepoint:syscalls:sys_enter_write
                where: args.count > steps.a.dist.p99
                aggregate:
                  - {id: hits, count: true}
        """)
    assert "bound at run time" in c[1].c_text


def test_address_and_state_decoders() -> None:
    prog = one("""\
        steps:
          - id: s
            probes:
              - probe: tracepoint:tcp:tcp_retransmit_skb
                aggregate:
                  - {id: f, count: true, by: [ntop(args.daddr), ntop(args.daddr_v6),
                                              tcp_state(args.state)]}
        """).program
    keys = prog.aggs[0].keys
    assert [(k.kind, k.size, k.decode) for k in keys] == [
        ("addr", 4, None), ("addr", 16, None), ("int", 8, "tcp_state")]
    assert "struct bpfrun_agg0_f_key { u8 k0[4]; u8 k1[16]; u64 k2; };" in prog.structs
