"""task_cgroup(tid) (issue #17): the cgroup of a task that is not the current one, read from
a record the compiler adds at sched_switch — once per step however many calls, in the step's
own sched_switch program when it has one, for every task whatever the run's target; its
argument is a thread id, and a thread never seen reads 0.

Compiled through the real pipeline against the recorded tracepoint formats; no root needed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.compiling import HEAD, KERNEL, compile_first

from bpfrun.compile.cfuncs import TASK_CGROUPS_MAP, probes_needed
from bpfrun.compile.explain import ADDED_ROLE, explain_runbook
from bpfrun.compile.pipeline import Compiled
from bpfrun.compile.program import CgroupFilter
from bpfrun.errors import ValidationError
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook

SWITCH = "tracepoint:sched:sched_switch"
# Four calls in one step: at the begin (where), at the end (two keys) and in a probe.
RUNQ = """\
steps:
  - id: runq
    span:
      begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid,
              where: task_cgroup(args.pid) != 0}
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - {id: victims, sum: duration, by: [task_cgroup(args.next_pid)]}
        - {id: pairs, count: true, by: [task_cgroup(args.next_pid), cgroup]}
    probes:
      - probe: tracepoint:sched:sched_process_exit
        aggregate:
          - {id: exits, count: true, by: [task_cgroup(args.pid)]}
"""
ELSEWHERE = """\
steps:
  - id: s
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        aggregate:
          - {id: w, count: true, by: [task_cgroup(tid)]}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compile_one(body: str, target: CgroupFilter | None = None) -> Compiled:
    return compile_first(HEAD + textwrap.dedent(body), target=target)


def recorders(c: Compiled) -> list[str]:
    return [h.name for h in c.program.handlers if h.every_task]


def test_one_record_per_step_however_many_calls_in_the_steps_own_switch_program() -> None:
    c = compile_one(RUNQ)
    assert len(recorders(c)) == 1
    assert c.c_text.count(f"{TASK_CGROUPS_MAP}.update(") == 1
    assert sum(m.startswith("/* task_cgroup") for m in c.program.maps) == 1
    assert f'BPF_TABLE("lru_hash", u32, u64, {TASK_CGROUPS_MAP}, 65536);' in c.c_text
    switches = [a for a in c.program.attaches if a.probe == SWITCH]
    assert len(switches) == 1  # shares the span end's program: one attach
    fn = next(f for f in c.program.functions if f.name == switches[0].fn_name)
    assert fn.handlers[-1] == recorders(c)[0]  # after the span's end
    record = next(h for h in c.program.handlers if h.every_task)
    assert record.body[1:3] == ["u32 tid = args->prev_pid;",
                                "if (tid == 0) return 0;  /* the idle task */"]
    assert "bpf_get_current_cgroup_id()" in "\n".join(record.body)
    assert c.c_text.count("bpfrun_task_cgroup(args->next_pid)") == 2
    assert "bpfrun_task_cgroup(args->pid)" in c.c_text


def test_a_step_without_sched_switch_gets_it_attached_for_the_record() -> None:
    c = compile_one(ELSEWHERE)
    assert [a.probe for a in c.program.attaches] == ["tracepoint:syscalls:sys_enter_write",
                                                     SWITCH]
    assert len(recorders(c)) == 1
    assert "struct bpfrun_tp_sched_sched_switch {" in c.c_text  # the record's layout
    assert "bpfrun_task_cgroup(((u32)BPFRUN_PID_TGID()))" in c.c_text


def test_a_step_that_does_not_call_it_has_no_record() -> None:
    c = compile_one(ELSEWHERE.replace("task_cgroup(tid)", "cgroup"))
    assert recorders(c) == [] and TASK_CGROUPS_MAP not in c.c_text
    assert [a.probe for a in c.program.attaches] == ["tracepoint:syscalls:sys_enter_write"]


def test_unknown_threads_read_0() -> None:
    c = compile_one(ELSEWHERE)
    reader = c.c_text[c.c_text.index("static __always_inline u64 bpfrun_task_cgroup("):]
    assert "return cgroup ? *cgroup : 0;" in reader[:reader.index("\n}")]


def test_a_target_filters_the_steps_handlers_but_not_the_record() -> None:
    check = "bpf_get_current_ancestor_cgroup_id(2) != 77ULL"
    c = compile_one(ELSEWHERE, CgroupFilter(77, 2, "unit x.service"))
    for h in c.program.handlers:
        assert (check in h.body[0]) is not h.every_task, h.name


@pytest.mark.parametrize(("call", "message"), [
    ("task_cgroup(comm)", "task_cgroup() takes a thread id (a number), not a string"),
    ("task_cgroup(kstack)", "task_cgroup() takes a thread id (a number), not a stack"),
    ("task_cgroup()", "task_cgroup() takes a thread id: task_cgroup(args.next_pid)"),
    ("task_cgroup(pid, tid)", "task_cgroup() takes a thread id: task_cgroup(args.next_pid)"),
])
def test_its_argument_is_one_thread_id(call: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        compile_one(ELSEWHERE.replace("task_cgroup(tid)", f'"{call}"'))  # quoted: a ','
    assert info.value.diagnostics[0].message == message


def test_it_is_a_number_in_conditions_and_arithmetic() -> None:
    body = ELSEWHERE.replace("by: [task_cgroup(tid)]",
                             "where: task_cgroup(args.fd + 1) == 42, by: [pid]")
    c = compile_one(body)
    assert "bpfrun_task_cgroup((args->fd + 1LL)) == 42LL" in c.c_text
    assert len(recorders(c)) == 1  # a call in `where` alone needs the record too
    with pytest.raises(ValidationError, match="cannot compare a number with a string"):
        compile_one(body.replace("== 42", '== "x"'))


def test_resolution_asks_for_the_added_probe_once() -> None:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(RUNQ))
    rb = load_runbook("t.yaml")
    assert probes_needed(rb.steps[0]) == [SWITCH]
    Path("t.yaml").write_text(HEAD + textwrap.dedent(ELSEWHERE.replace("task_cgroup(tid)",
                                                                       "tid")))
    assert probes_needed(load_runbook("t.yaml").steps[0]) == []


def test_explain_names_the_added_probe_and_its_cost() -> None:
    Path("t.yaml").write_text(HEAD + textwrap.dedent(RUNQ))
    rb = load_runbook("t.yaml")
    expl = explain_runbook(rb, resolve_params(rb, {}), KERNEL)
    added = [p for p in expl.probes if p.role.startswith(ADDED_ROLE)]
    assert len(added) == 1
    assert (added[0].probe, added[0].role) == (SWITCH, f"{ADDED_ROLE} task_cgroup() at")
    assert [r.expr for r in added[0].reads] == ["args.prev_pid"]
    assert added[0].cost.rate == "very frequent"
    assert "per context switch, a lookup in a map of up to 65536 threads" in added[0].cost.per
    assert (added[0].loc.line, added[0].loc.col) == (8, 22)  # the first call, in `where`
    # The record exports nothing: the aggregations' probes are the step's own.
    assert all(o.probe == "tracepoint:sched:sched_wakeup, tracepoint:sched:sched_switch, "
               "tracepoint:sched:sched_process_exit" for o in expl.outputs)
