"""target_task (issue #17): a handler that names a thread has the run's target tested on that
thread — from the record task_cgroup() reads, which then also notes whether each thread was
in the target as it left a CPU — instead of on the current task. Without a target nothing
changes: no record, no test, the expression only type-checked. Positioned errors for a
target_task that is not a thread id.

Compiled through the real pipeline against the recorded tracepoint formats; no root needed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.compiling import HEAD, compile_first

from bpfrun.compile.cfuncs import TASK_CGROUPS_MAP, probes_needed
from bpfrun.compile.pipeline import Compiled
from bpfrun.compile.program import CgroupFilter, Handler
from bpfrun.errors import ValidationError
from bpfrun.frontend.runbooks import load_runbook

SWITCH = "tracepoint:sched:sched_switch"
RUNQ = """\
steps:
  - id: runq
    span:
      begin: {probe: tracepoint:sched:sched_wakeup, key: args.pid, target_task: args.pid}
      end: {probe: tracepoint:sched:sched_switch, key: args.next_pid}
      aggregate:
        - {id: dist, hist: duration}
    probes:
      - probe: tracepoint:sched:sched_process_exit
        aggregate:
          - {id: exits, count: true}
"""
UNIT = CgroupFilter(4242, 3, "unit checkout.service", "unit")
NAMESPACE = CgroupFilter(4242, 1, "cgroup /", level_exact=False)
TASK_TEST = "if (!bpfrun_task_in_target((u32)(args->pid))) return 0;"
CURRENT_TEST = "if (bpf_get_current_ancestor_cgroup_id(3) != 4242ULL) return 0;"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compile_one(body: str, target: CgroupFilter | None = None) -> Compiled:
    return compile_first(HEAD + textwrap.dedent(body), target=target)


def handler(c: Compiled, comment: str) -> Handler:
    return next(h for h in c.program.handlers if comment in h.comment)


def record(c: Compiled) -> Handler:
    return next(h for h in c.program.handlers if h.every_task)


def test_under_a_target_the_begin_tests_the_named_thread_and_the_record_stores_the_flag() -> None:
    c = compile_one(RUNQ, UNIT)
    begin = handler(c, "span begin")
    assert begin.target_task
    assert any(line.startswith(TASK_TEST) for line in begin.body)
    assert not any(line.startswith(CURRENT_TEST) for line in begin.body)
    # The other probe still tests the current task; the span's end is not tested.
    assert handler(c, "sched_process_exit").body[0].startswith(CURRENT_TEST)
    end = handler(c, "span end")
    assert not any("target" in line for line in end.body)
    rec = record(c)
    assert not any(line.startswith(CURRENT_TEST) for line in rec.body)  # every task
    flag = "(bpf_get_current_ancestor_cgroup_id(3) == 4242ULL) ? 1 : 0"
    assert any(flag in line for line in rec.body), rec.body
    assert "struct bpfrun_task_record { u64 cgroup; u64 in_target; };" in c.c_text
    assert "return r ? r->cgroup : 0;" in c.c_text  # task_cgroup() reads .cgroup
    assert c.c_text.count(f"{TASK_CGROUPS_MAP}.update(") == 1
    assert [a.probe for a in c.program.attaches].count(SWITCH) == 1  # the end's program


def test_without_a_target_nothing_is_added() -> None:
    plain = compile_one(RUNQ.replace(", target_task: args.pid", ""))
    c = compile_one(RUNQ)
    assert c.c_text == plain.c_text
    assert not any(h.every_task or h.target_task for h in c.program.handlers)
    for root in (None, CgroupFilter(1, 0, "cgroup /")):
        assert TASK_CGROUPS_MAP not in compile_one(RUNQ, root).c_text


def test_the_record_is_requested_only_under_a_target() -> None:
    Path("t.yaml").write_text(HEAD + RUNQ)
    step = load_runbook("t.yaml").steps[0]
    assert probes_needed(step) == []
    assert probes_needed(step, targeted=True) == [SWITCH]


def test_task_cgroup_and_target_task_share_one_record() -> None:
    body = RUNQ.replace("{id: dist, hist: duration}",
                        "{id: dist, hist: duration, by: [task_cgroup(args.next_pid)]}")
    c = compile_one(body, UNIT)
    assert len([h for h in c.program.handlers if h.every_task]) == 1
    assert "bpfrun_task_cgroup(args->next_pid)" in c.c_text
    # Without a target, task_cgroup()'s record keeps its plain map of cgroup ids.
    plain = compile_one(body)
    assert f'BPF_TABLE("lru_hash", u32, u64, {TASK_CGROUPS_MAP}, 65536);' in plain.c_text
    assert "in_target" not in plain.c_text


def test_inside_a_cgroup_namespace_the_record_searches_the_levels() -> None:
    c = compile_one(RUNQ, NAMESPACE)
    assert any("(bpfrun_in_target()) ? 1 : 0" in line for line in record(c).body)
    assert handler(c, "sched_process_exit").body[0].startswith("if (!bpfrun_in_target())")
    assert sum("static __always_inline int bpfrun_in_target(void)" in m
               for m in c.program.maps) == 1


def test_a_probe_and_a_span_end_can_name_their_thread() -> None:
    body = RUNQ.replace("key: args.next_pid}", "key: args.next_pid, target_task: args.next_pid}")
    body = body.replace("- probe: tracepoint:sched:sched_process_exit",
                        "- probe: tracepoint:sched:sched_process_exit\n"
                        "        target_task: args.pid")
    c = compile_one(body, UNIT)
    probe = handler(c, "sched_process_exit")
    assert probe.target_task and not probe.body[0].startswith(CURRENT_TEST)
    assert any(line.startswith(TASK_TEST) for line in probe.body)
    end = handler(c, "span end").body
    tested = next(i for i, line in enumerate(end)
                  if line.startswith("if (!bpfrun_task_in_target((u32)(args->next_pid)))"))
    deleted = next(i for i, line in enumerate(end) if ".delete(&key);" in line)
    assert deleted < tested  # a refused end still consumes its begin


@pytest.mark.parametrize("target", [None, UNIT])
def test_a_target_task_that_is_not_a_thread_id_is_an_error_at_its_place(
        target: CgroupFilter | None) -> None:
    with pytest.raises(ValidationError) as e:
        compile_one(RUNQ.replace("target_task: args.pid", "target_task: args.comm"), target)
    [d] = e.value.diagnostics
    assert d.message == "target_task is a thread id (a number), not a string"
    assert d.loc is not None
    # At the expression (the begin's line), not at the span.
    line = Path("t.yaml").read_text().splitlines()[d.loc.line - 1]
    assert line.index("target_task: args.comm") + len("target_task: ") == d.loc.col - 1, d.loc
