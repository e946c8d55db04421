"""A run aimed at one cgroup (--cgroup/--unit/--container/--pod): every handler of the step
first returns unless the current task is in that cgroup or below it.

bpf_get_current_ancestor_cgroup_id(level) reads the task's cgroup v2 ancestor at the target's
level (0 for a task above it), so a pod covers its containers and a slice its units, with no
map and no read of kernel structs; it runs before `where` and any map work.

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


def aim(prog: Program, target: CgroupFilter | None) -> None:
    if target is None:
        return
    prog.cgroup = target
    if target.level == 0:
        return  # the root: every task
    check = (f"if (bpf_get_current_ancestor_cgroup_id({target.level}) != {target.id}ULL) "
             f"return 0;  /* target: {target.label.replace('*/', '* /')} */")
    for handler in prog.handlers:
        if not (handler.span_end or handler.every_task):
            handler.body.insert(0, check)
