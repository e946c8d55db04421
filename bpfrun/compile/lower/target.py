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

It sees only the current task. A span's end is left unfiltered: it completes only begins
that were recorded, and those were filtered — so offcpu (begin: sched_switch's prev, the
current task; end: its next_pid, while another task is current) measures the target's
tasks. A begin whose current task is not its subject (sched_wakeup: the waker) is filtered
by the waker's cgroup: the woken task's cgroup (task_cgroup(args.pid)) is an id, not an
ancestry, so the target cannot check it. The record task_cgroup() reads is kept for every
task (Handler.every_task), whatever the target.
"""

from __future__ import annotations

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


def aim(prog: Program, target: CgroupFilter | None) -> None:
    if target is None:
        return
    prog.cgroup = target
    if target.level == 0:
        return  # the root: every task
    label = target.label.replace("*/", "* /")
    if target.level_exact:
        check = (f"if (bpf_get_current_ancestor_cgroup_id({target.level}) != {target.id}ULL) "
                 f"return 0;  /* target: {label} */")
    else:
        prog.maps.append(SEARCH.format(label=label, floor=target.level, levels=MAX_LEVELS,
                                       id=target.id))
        check = f"if (!bpfrun_in_target()) return 0;  /* target: {label} */"
    for handler in prog.handlers:
        if not (handler.span_end or handler.every_task):
            handler.body.insert(0, check)
