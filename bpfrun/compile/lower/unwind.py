"""User stacks walked through the C library by its unwind table (issue #12.3): where the
generated code takes a user stack with bpfrun_unwind_user() (templates/unwind.c.j2) instead
of a plain frame-pointer walk.

Debian's libc keeps no frame pointers, so bpf_get_stack from inside a libc function skips its
callers. At tracepoints, raw tracepoints, kprobes and perf samples, the unwinder steps over
the libc frames with the .eh_frame rules the runtime loads (runtime/unwind_tables.py), then
follows frame pointers. Uprobes keep the plain walk: at a function's entry the caller is
spliced back from the return address instead (stacks.py), and the two would both add it.
"""

from __future__ import annotations

from bpfrun.compile.cexpr import Scope
from bpfrun.compile.lower.context import StepContext

# Probe kinds whose user stack starts from the task's saved user registers (a syscall, an
# interrupt, a fault or a sample), the registers the unwinder reads with bpf_task_pt_regs.
UNWIND_PROBES = ("tracepoint", "rawtracepoint", "profile", "software", "kprobe", "kretprobe")


def unwinds(ctx: StepContext, scope: Scope) -> bool:
    """A user stack taken here is walked with the unwind table."""
    return ctx.features.user_unwind and scope.probe.kind in UNWIND_PROBES


def unwound_stack(ctx: StepContext, dest: str) -> list[str]:
    """The statement that stores the id of the user stack, unwound, into `dest`."""
    ctx.prog.unwind_user = True
    return [f"{dest} = bpfrun_stack_id(ctx, BPF_F_USER_STACK | BPFRUN_UNWIND);"]
