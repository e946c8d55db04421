"""A run aimed at one cgroup (--cgroup/--unit/--container/--pod): every handler of the step
first returns unless the current task is in that cgroup or below it.

bpf_get_current_ancestor_cgroup_id(level) reads the task's cgroup v2 ancestor at the target's
level (0 for a task above it), so a pod covers its containers and a slice its units, with no
map and no read of kernel structs; it runs before `where` and any map work.
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
        handler.body.insert(0, check)
