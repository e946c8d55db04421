"""`bpfrun explain`: what each shipped runbook attaches to, reads, exports and costs, and a
runbook that copies what processes write out of the kernel flagged as such (issue #18.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import FIXTURES, REPO

from bpfrun.compile.explain import (
    STACK,
    TASK_NAME,
    USER_MEMORY,
    Explanation,
    ProbeUse,
    explain_runbook,
)
from bpfrun.compile.explain_text import c_comment, text
from bpfrun.frontend.params import placeholder_params
from bpfrun.frontend.runbooks import load_runbook, shipped_runbooks
from bpfrun.kernel.tracefs import FakeKernel

KERNEL = FakeKernel(FIXTURES / "tracefs")
LEAK = """\
apiVersion: bpfrun/v1
name: leak
title: What processes write
steps:
  - id: w
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        where: pid == 42
        emit: [comm, str(args.buf)]
"""


def explain(name_or_path: str | Path) -> Explanation:
    path = name_or_path if isinstance(name_or_path, Path) else \
        REPO / "runbooks" / f"{name_or_path}.yaml"
    rb = load_runbook(path)
    return explain_runbook(rb, placeholder_params(rb), KERNEL)


def probes_of(expl: Explanation, probe: str) -> list[ProbeUse]:
    return [p for p in expl.probes if p.probe == probe]


def test_emitting_a_write_buffer_reads_user_memory_and_exports_it(tmp_path: Path) -> None:
    path = tmp_path / "leak.yaml"
    path.write_text(LEAK)
    expl = explain(path)
    [use] = expl.probes
    assert (use.kind, use.category, use.processes) == ("tracepoint", "syscalls", ("pid == 42",))
    [(_, read)] = expl.user_memory_reads
    assert (read.expr, read.pointer, read.loc.line, read.loc.col) == \
        ("str(args.buf)", "args.buf", 9, 22)
    [(out, field)] = expl.user_memory_exports
    assert (out.what, field.expr, field.kind, field.pointers) == \
        ("events", "str(args.buf)", USER_MEMORY, ("args.buf",))
    assert (field.loc.line, field.loc.col) == (9, 22)
    assert not expl.aggregates_only
    words = text(expl)
    assert "Copies user memory out of the kernel: str(args.buf)" in words
    assert "per write system call" in words


def test_memleak_traps_every_allocation_and_free_of_libc_and_exports_numbers() -> None:
    expl = explain("memleak")
    kinds = {(p.kind, p.target, p.function) for p in expl.probes}
    assert ("uretprobe", "libc", "malloc") in kinds and ("uprobe", "libc", "free") in kinds
    assert {"calloc", "realloc"} <= {p.function for p in expl.probes}
    assert all(p.cost.rate == "very frequent" for p in expl.probes)
    assert all(p.cost.per.startswith(("per allocation", "per free")) for p in expl.probes)
    assert not expl.user_memory_reads and expl.aggregates_only
    reads = {r.what for p in expl.probes for r in p.reads}
    assert {"function argument", "user stack"} <= reads
    assert all(p.processes == ("pid == params.pid",) for p in expl.probes)
    assert all(p.all_processes for p in expl.probes)  # pid 0: every process
    rb = load_runbook(REPO / "runbooks" / "memleak.yaml")
    one = explain_runbook(rb, {**placeholder_params(rb), "pid": 42}, KERNEL)
    assert not any(p.all_processes for p in one.probes)
    assert "processes picked by pid == params.pid" in text(one)


def test_syscalls_is_every_system_call_and_numbers_only() -> None:
    expl = explain("syscalls")
    first = [p for p in expl.probes if p.step == "syscalls"]
    assert {p.probe for p in first} == {"rawtracepoint:sys_enter", "rawtracepoint:sys_exit"}
    assert all(p.cost.per.startswith("per system call") for p in expl.probes)
    assert expl.aggregates_only and not expl.user_memory_reads
    assert "Only aggregated numbers leave the kernel" in text(expl)


@pytest.mark.parametrize(("name", "exported"), [
    ("execs", {"str(args.filename)", "argv(args.argv, 1)", "argv(args.argv, 2)",
               "str(begin.args.filename)"}),
    ("opens", {"str(args.filename)", "str(begin.args.filename)"}),
])
def test_runbooks_naming_files_export_the_user_strings_they_read(name: str,
                                                                 exported: set[str]) -> None:
    expl = explain(name)
    assert {f.expr for _, f in expl.user_memory_exports} == exported
    assert any(o.what == "events" for o in expl.outputs)


@pytest.mark.parametrize(("name", "probe", "per"), [
    ("offcpu", "tracepoint:sched:sched_switch", "per context switch"),
    ("runq-latency", "tracepoint:sched:sched_wakeup", "per wakeup"),
    ("block-latency", "tracepoint:block:block_rq_issue", "per block I/O request"),
    ("irq-handler", "tracepoint:irq:irq_handler_entry", "per hardware interrupt"),
    ("tcp-retransmits", "tracepoint:tcp:tcp_retransmit_skb", "per TCP retransmission"),
    ("writes", "tracepoint:syscalls:sys_enter_write", "per write system call"),
    ("execs", "tracepoint:syscalls:sys_enter_execve", "per exec"),
    ("triage", "rawtracepoint:sys_enter", "per system call"),
])
def test_each_probe_costs_what_it_attaches_to(name: str, probe: str, per: str) -> None:
    uses = probes_of(explain(name), probe)
    assert uses and all(u.cost.per.startswith(per) for u in uses)


def test_profile_samples_at_a_bounded_rate_and_exports_stacks() -> None:
    expl = explain("profile")
    assert {p.kind for p in expl.probes} == {"profile"}
    assert {p.cost.rate for p in expl.probes} == {"bounded"}
    kinds = {f.kind for o in expl.outputs for f in o.fields}
    assert STACK in kinds and TASK_NAME in kinds and USER_MEMORY not in kinds


@pytest.mark.parametrize("path", shipped_runbooks(), ids=lambda p: p.stem)
def test_every_shipped_runbook_is_explained(path: Path) -> None:
    expl = explain(path)
    assert expl.probes and expl.outputs
    assert all(p.cost.per and p.cost.rate for p in expl.probes)
    readers = {r.expr for _, r in expl.user_memory_reads}
    assert bool(readers) == (path.stem in ("execs", "opens")), readers


def test_explain_lists_the_policy_violations(tmp_path: Path) -> None:
    path = tmp_path / "leak.yaml"
    path.write_text(LEAK)
    r = subprocess.run([sys.executable, "-m", "bpfrun", "explain", str(path)], cwd=REPO,
                       text=True, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Policy (default policy): refuses it (1 violation(s)):" in r.stdout
    assert f"{path}:9:22: error: policy rule 'user_memory.raw_buffers'" in r.stdout


def test_compile_comment_cannot_be_closed_by_the_runbook(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(LEAK.replace("pid == 42", 'comm == "*/x"'))
    comment = c_comment(explain(path))
    assert comment.startswith("/*\n") and comment.count("*/") == 1


def test_cli_explain_and_compile_show_it() -> None:
    def bpfrun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bpfrun", *args], cwd=REPO, text=True,
                              capture_output=True, timeout=120)

    r = bpfrun("explain", "memleak")
    assert r.returncode == 0, r.stderr
    assert "uprobe:libc:free" in r.stdout and "per allocation" in r.stdout
    c = bpfrun("compile", "syscalls", "--step", "syscalls")
    assert c.returncode == 0, c.stderr
    assert c.stdout.startswith("/*\n * syscalls (") and "per system call" in c.stdout
    assert bpfrun("explain", "memleak", "-p", "nope=1").returncode == 2
    r = bpfrun("explain", "execs")
    assert r.returncode == 0 and "Policy (default policy): allows it." in r.stdout
