"""The record task_cgroup(tid) reads: a handler the compiler adds, once per step that calls
it, on tracepoint:sched:sched_switch, storing each thread's cgroup as it leaves a CPU.

At a context switch the task leaving (prev) is the current task, whose cgroup id the kernel
gives with no read of kernel structs (bpf_get_current_cgroup_id); keyed by its thread id, it
is there when the same thread later waits for a CPU (sched_wakeup's pid, sched_switch's
next_pid), where it is not the current task. A thread not switched out since the step
attached is unknown: 0.

The handler shares the probe function of the step's own sched_switch handlers when it has
some (one program attached, one tracepoint record built), and runs after them. A raw
tracepoint would skip building the record but needs the task_struct's pid: measured for the
sched_* probes, such reads cancel the saving (bench/RESULTS.md), and bpfrun reads no kernel
structs. The map is an LRU hash: it never fills, the threads switched out
longest ago go first; the lookup before the update keeps the common case (same thread, same
cgroup) to one lookup.

When the run has a target and a handler of the step tests it on a thread it names
(`target_task`), the record is added for that too, and each entry also holds whether the
thread passed the target's test as it left (the same test lower/target.py makes of the
current task, which prev is here). It is made only when the thread's cgroup changed or is
new: the same cgroup has the same ancestors, so the common case stays one lookup; a new or
moved thread costs one more helper call (a search of its ancestors inside a cgroup
namespace). Without a target the record is as above, with the cgroup alone.
"""

from __future__ import annotations

from bpfrun.compile.cfuncs import (
    FUNCTION_PROBES,
    TASK_CGROUPS_MAP,
    TASK_CGROUPS_SIZE,
    target_tasks,
)
from bpfrun.compile.cvalue import Uses
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.handlers import add_handler, function_for
from bpfrun.compile.lower.target import current_in_target, targeted
from bpfrun.compile.program import CgroupFilter, Program
from bpfrun.kernel.resolve import Resolved

PROBE = FUNCTION_PROBES["task_cgroup"]
DECLARATION = f"""\
/* task_cgroup(tid): each thread's cgroup id as it last left a CPU; 0 while unknown. */
BPF_TABLE("lru_hash", u32, u64, {TASK_CGROUPS_MAP}, {TASK_CGROUPS_SIZE});
static __always_inline u64 bpfrun_task_cgroup(u32 tid) {{
    u64 *cgroup = {TASK_CGROUPS_MAP}.lookup(&tid);
    return cgroup ? *cgroup : 0;
}}"""
RECORD = [
    "u32 tid = args->prev_pid;",
    "if (tid == 0) return 0;  /* the idle task */",
    "u64 cgroup = bpf_get_current_cgroup_id();",
    f"u64 *known = {TASK_CGROUPS_MAP}.lookup(&tid);",
    "if (known) { if (*known != cgroup) *known = cgroup; }",
    f"else {TASK_CGROUPS_MAP}.update(&tid, &cgroup);",
]


# With a target_task under a target: each thread's cgroup and whether it is in the target.
TARGET_DECLARATION = f"""\
/* task_cgroup(tid) and target_task: each thread's cgroup id as it last left a CPU, and whether
 * it was in the run's target then; 0 while unknown. */
struct bpfrun_task_record {{ u64 cgroup; u64 in_target; }};
BPF_TABLE("lru_hash", u32, struct bpfrun_task_record, {TASK_CGROUPS_MAP}, {TASK_CGROUPS_SIZE});
static __always_inline u64 bpfrun_task_cgroup(u32 tid) {{
    struct bpfrun_task_record *r = {TASK_CGROUPS_MAP}.lookup(&tid);
    return r ? r->cgroup : 0;
}}
static __always_inline int bpfrun_task_in_target(u32 tid) {{
    struct bpfrun_task_record *r = {TASK_CGROUPS_MAP}.lookup(&tid);
    return r && r->in_target;
}}"""


def target_record(in_target: str) -> list[str]:
    """The record's body when it also notes who is in the target (`in_target`: the C test of
    the current task, prev), made only for a new thread or one whose cgroup changed."""
    return [
        "u32 tid = args->prev_pid;",
        "if (tid == 0) return 0;  /* the idle task */",
        "u64 cgroup = bpf_get_current_cgroup_id();",
        f"struct bpfrun_task_record *known = {TASK_CGROUPS_MAP}.lookup(&tid);",
        "if (known && known->cgroup == cgroup) return 0;  /* same cgroup, same ancestors */",
        f"struct bpfrun_task_record rec = {{cgroup, ({in_target}) ? 1 : 0}};",
        "if (known) *known = rec;",
        f"else {TASK_CGROUPS_MAP}.update(&tid, &rec);",
    ]


def needs_in_target(ctx: StepContext) -> bool:
    """A handler of the step tests the run's target on a thread it names."""
    return targeted(ctx.prog.cgroup) and target_tasks(ctx.step)


def record_task_cgroups(ctx: StepContext, added: dict[str, Resolved]) -> None:
    """When a handler of the step calls task_cgroup(), or tests the run's target on a thread
    it names: the map, its readers and the handler that fills it (not filtered by a target:
    every task's cgroup is recorded)."""
    res = added.get(PROBE)
    in_target = needs_in_target(ctx)
    if not (ctx.task_cgroups or in_target) or res is None:
        return  # None: resolution could not parse it, and has said so
    body = RECORD
    if in_target:
        body = target_record(in_target_test(ctx.prog, ctx.prog.cgroup))
    ctx.prog.maps.append(TARGET_DECLARATION if in_target else DECLARATION)
    fn = function_for(ctx, res)
    what = "and whether it is in the target " if in_target else ""
    add_handler(ctx, fn, res, f"task_cgroup(): each thread's cgroup {what}as it leaves a CPU "
                f"({PROBE}, added by the compiler)", body, Uses())
    ctx.prog.handlers[-1].every_task = True


def in_target_test(prog: Program, target: CgroupFilter | None) -> str:
    assert target is not None  # needs_in_target said so
    return current_in_target(prog, target)[0]
