"""The kernel's features decide the C, and nothing else does: one runbook compiled with fake
kernels of different features gives the C each calls for, whatever the host and its
environment; and what a handler needs is read from the IR, never from its C.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from helpers.paths import FIXTURES

from bpfrun.compile import emit
from bpfrun.compile.pipeline import Compiled, compile_step, placeholder_values
from bpfrun.compile.program import Function, Handler, Program
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.features import Features
from bpfrun.kernel.tracefs import FakeKernel

TRACEFS = FIXTURES / "tracefs"
HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"
NEW = FakeKernel(TRACEFS)  # the fixed defaults: a recent x86-64 kernel
OLD_ARM = FakeKernel(TRACEFS, features=Features(ring_buffer=False, task_storage=False,
                                                arch="aarch64"))

RUNBOOK = """\
    steps:
      - id: s
        span:
          begin: {probe: tracepoint:syscalls:sys_enter_write, key: tid}
          end: {probe: tracepoint:syscalls:sys_exit_write, key: tid}
          aggregate:
            - {id: lat, hist: duration}
        probes:
          - probe: tracepoint:syscalls:sys_enter_openat
            emit: [pid, ustack, str(args.filename)]
          - probe: profile:hz:99
            aggregate:
              - {id: oncpu, count: true, by: [kstack]}
    """


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compile_with(kernel: FakeKernel, body: str = RUNBOOK) -> Compiled:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(body))
    rb = load_runbook("t.yaml")
    (step,) = rb.steps
    return compile_step(rb, step, resolve_params(rb, {}), placeholder_values(rb, step), kernel)


def test_ring_buffer_or_perf_buffer() -> None:
    new, old = compile_with(NEW), compile_with(OLD_ARM)
    assert new.program.event_buffer == "ringbuf" and old.program.event_buffer == "perf"
    assert "BPF_RINGBUF_OUTPUT(events, 256);" in new.c_text
    assert "events.ringbuf_submit(e, 0);" in new.c_text and "e->tgid = " in new.c_text
    assert "BPF_RINGBUF_OUTPUT(bpfrun_owners, 16);" in new.c_text  # user stacks' owners
    assert "BPF_PERF_OUTPUT(events);" in old.c_text and "RINGBUF" not in old.c_text
    assert "events.perf_submit(ctx, &e, sizeof(e));" in old.c_text
    # The record is on the stack: every field through `e.`, none through a pointer.
    assert "e.tgid = BPFRUN_PID_TGID() >> 32;" in old.c_text and "e->" not in old.c_text
    assert "bpf_probe_read_user_str(&e.f2, 128, (void *)args->filename);" in old.c_text


def test_task_storage_or_a_hash_for_thread_spans() -> None:
    new, old = compile_with(NEW), compile_with(OLD_ARM)
    assert new.program.span_storage == "task" and new.program.pending_map is None
    assert "BPF_TASK_STORAGE(pending_s, struct bpfrun_s_span_val);" in new.c_text
    assert "struct bpfrun_s_span_key" not in new.c_text  # no key to compute or hash
    assert old.program.span_storage == "hash" and old.program.pending_map == "pending_s"
    assert ("BPF_HASH(pending_s, struct bpfrun_s_span_key, struct bpfrun_s_span_val, 10240);"
            in old.c_text)
    assert "task_storage_get" not in old.c_text


def test_pending_aggregations_keep_the_hash_with_task_storage() -> None:
    prog = compile_with(NEW, """\
        steps:
          - id: s
            span:
              begin: {probe: tracepoint:syscalls:sys_enter_write, key: tid}
              end: {probe: tracepoint:syscalls:sys_exit_write, key: tid}
              aggregate: [{id: done, count: true}]
              pending:
                - {id: open, count: true, by: [begin.pid]}
        """).program
    assert prog.span_storage == "hash" and prog.pending_map == "pending_s"  # listed at the end


def test_user_mode_check_only_where_the_template_knows_the_registers() -> None:
    x86, arm = compile_with(NEW), compile_with(OLD_ARM)
    assert "k.k0 = BPFRUN_IN_USER_MODE(ctx) ? 0 /* none */ : bpfrun_stack_id(ctx, 0);" \
        in x86.c_text
    assert "#define BPFRUN_IN_USER_MODE(ctx)" in x86.c_text
    assert [h.user_mode_check for h in x86.program.handlers] == [False, False, False, True]
    assert "k.k0 = bpfrun_stack_id(ctx, 0);" in arm.c_text
    assert "BPFRUN_IN_USER_MODE" not in arm.c_text


def test_the_environment_does_not_change_a_fake_kernels_c(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = compile_with(NEW).c_text
    monkeypatch.setenv("BPFRUN_EVENT_BUFFER", "perf")
    monkeypatch.setenv("BPFRUN_SPAN_STORAGE", "hash")
    assert compile_with(NEW).c_text == before


def test_handlers_record_what_they_read() -> None:
    prog = compile_with(NEW, """\
        steps:
          - id: s
            probes:
              - probe: tracepoint:sched:sched_switch
                where: args.prev_comm == args.next_comm && uid == 0
                aggregate: [{id: hits, count: true, by: [comm]}]
              - probe: tracepoint:sched:sched_switch
                aggregate: [{id: c, count: true, by: [cpu]}]
        """).program
    switch, cpu = prog.handlers
    assert (switch.caches, switch.string_compare) == (["uid_gid", "comm"], True)
    assert (cpu.caches, cpu.string_compare, cpu.user_mode_check) == ([], False, False)


def test_usdt_arguments_are_read_by_the_functions_own_reader() -> None:
    c = compile_with(NEW, f"""\
        steps:
          - id: s
            probes:
              - probe: usdt:{sys.executable}:bpfr:request
                where: arg0 > 3
                aggregate: [{{id: total, sum: arg1}}]
        """)
    (fn,) = c.program.functions
    assert f"_bpf_readarg_{fn.name}_1(ctx, &usdt_arg1, sizeof(usdt_arg1));" in c.c_text
    assert f"_bpf_readarg_{fn.name}_2(ctx, &usdt_arg3, sizeof(usdt_arg3));" in c.c_text
    assert "READARG" not in c.c_text


def test_entry_arguments_are_stashed_for_the_return_probe() -> None:
    c = compile_with(NEW, f"""\
        steps:
          - id: s
            probes:
              - probe: uretprobe:{sys.executable}:malloc
                aggregate: [{{id: total, sum: entry.arg0}}]
        """)
    ret = next(h for h in c.program.handlers if h.comment.startswith("uretprobe"))
    assert ret.caches == ["pid_tgid"]  # the stash is keyed by thread
    assert "u64 bpfrun_entry_tid = BPFRUN_PID_TGID();" in ret.body
    assert sorted(a.kind for a in c.program.attaches) == ["uprobe", "uretprobe"]


def test_emit_lays_out_what_the_ir_records_not_what_the_c_says() -> None:
    prog = Program("s")
    prog.handlers.append(Handler("h", "void", "test", ["/* bpfrun_streq( BPFRUN_UID_GID() */"],
                                 caches=["pid_tgid"], user_mode_check=True))
    prog.functions.append(Function("f", "void", "test", [], ["h"]))
    c = emit.render(prog, "t", "t.yaml")
    assert "#define BPFRUN_PID_TGID()" in c and "#define BPFRUN_UID_GID()" not in c
    assert "bpfrun_streq(const char" not in c
    assert "#define BPFRUN_IN_USER_MODE(ctx)" in c
