"""A run aimed at one cgroup (--cgroup/--unit/--container/--pod): every handler of the step
first returns unless the current task is in that cgroup or below it.

bpf_get_current_ancestor_cgroup_id(level) reads the task's cgroup v2 ancestor at the target's
level (0 for a task above it), so a pod covers its containers and a slice its units, with no
map and no read of kernel structs; it runs before `where` and any map work.

Inside a cgroup namespace that mounts only its own part of the hierarchy, the target's level
is not known (its root's level is hidden from user space), only the least it can be: then the
check reads the task's ancestors from that level down until it finds the target or runs past
the task's own cgroup (an id is at one level only, so a match anywhere is the target). It
costs one helper call per level of the task below the floor instead of one.

It sees the current task. A span's end is left unfiltered: it completes only begins
that were recorded, and those were filtered — so offcpu (begin: sched_switch's prev, the
current task; end: its next_pid, while another task is current) measures the target's
tasks. Where the current task is not the handler's subject (sched_wakeup: the waker, not
the woken task), the handler names its thread (`target_task: args.pid`): the target is then
tested on that thread as it last left a CPU, from the record task_cgroup() reads, which
also notes whether each thread it records passes this same test (lower/taskcgroup.py), so
an id is enough: `if (!bpfrun_task_in_target(tid)) return 0;`. That record is kept for
every task (Handler.every_task), whatever the target.
"""

from __future__ import annotations

from bpfrun.compile.cstr import c_comment
from bpfrun.compile.program import CgroupFilter, Program

MAX_LEVELS = 32  # levels below the floor looked at when the target's level is not known
SEARCH = """\
/* target {label}: its level is at least {floor}, not known (a cgroup namespace's own part of
 * the hierarchy is mounted): look from there down the task's ancestors. */
static __always_inline int bpfrun_in_target(void) {{
    #pragma unroll
    for (int level = {floor}; level < {floor} + {levels}; level++) {{
        u64 id = bpf_get_current_ancestor_cgroup_id(level);
        if (id == {id}ULL) return 1;
        if (id == 0) return 0;  /* past the task's own cgroup */
    }}
    return 0;
}}"""


def targeted(target: CgroupFilter | None) -> bool:
    """Whether the run's target filters anything (the root holds every task)."""
    return target is not None and target.level > 0


def current_in_target(prog: Program, target: CgroupFilter) -> tuple[str, str]:
    """C conditions that the current task is in the target / is not, declaring the search of
    its ancestors (once) when the target's level is not known."""
    if target.level_exact:
        read = f"bpf_get_current_ancestor_cgroup_id({target.level})"
        return f"{read} == {target.id}ULL", f"{read} != {target.id}ULL"
    search = SEARCH.format(label=c_comment(target.label), floor=target.level,
                           levels=MAX_LEVELS, id=target.id)
    if search not in prog.maps:
        prog.maps.append(search)
    return "bpfrun_in_target()", "!bpfrun_in_target()"


def task_check(target: CgroupFilter, tid: str) -> str:
    """The statement that returns unless thread `tid` was in the target when it last left a
    CPU (a thread not switched out since the step attached is not in it)."""
    label = c_comment(target.label)
    return (f"if (!bpfrun_task_in_target((u32)({tid}))) return 0;  "
            f"/* target: {label}, of the thread named by target_task */")


def aim(prog: Program, target: CgroupFilter | None) -> None:
    """Every handler of `prog` tests the target on its current task, but those that test it
    on a thread they name (target_task) and the bookkeeping ones."""
    if target is None:
        return
    prog.cgroup = target
    if not targeted(target):
        return
    label = c_comment(target.label)
    check = f"if ({current_in_target(prog, target)[1]}) return 0;  /* target: {label} */"
    for handler in prog.handlers:
        if not (handler.span_end or handler.every_task or handler.target_task):
            handler.body.insert(0, check)
