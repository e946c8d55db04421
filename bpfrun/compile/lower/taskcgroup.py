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
"""

from __future__ import annotations

from bpfrun.compile.cfuncs import FUNCTION_PROBES, TASK_CGROUPS_MAP, TASK_CGROUPS_SIZE
from bpfrun.compile.cvalue import Uses
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.handlers import add_handler, function_for
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


def record_task_cgroups(ctx: StepContext, added: dict[str, Resolved]) -> None:
    """When a handler of the step calls task_cgroup(): the map, its reader and the handler
    that fills it (not filtered by a target: every task's cgroup is recorded)."""
    res = added.get(PROBE)
    if not ctx.task_cgroups or res is None:
        return  # None: resolution could not parse it, and has said so
    ctx.prog.maps.append(DECLARATION)
    fn = function_for(ctx, res)
    add_handler(ctx, fn, res, f"task_cgroup(): each thread's cgroup as it leaves a CPU "
                f"({PROBE}, added by the compiler)", RECORD, Uses())
    ctx.prog.handlers[-1].every_task = True
