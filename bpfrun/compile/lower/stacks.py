"""Stacks: stored as ids into the program's stack map, with what user space needs to
symbolize them (the process of a user stack, a uprobe's direct caller), and the size of the
stack map.
"""

from __future__ import annotations

from dataclasses import replace

from bpfrun.compile.cexpr import CVal, Scope
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.unwind import unwinds, unwound_stack
from bpfrun.compile.program import KeyField
from bpfrun.expr.nodes import Attr, Name
from bpfrun.frontend.model import Aggregation

STACK_KINDS = ("stack", "ustack")
RETURN_PROBES = ("uretprobe", "kretprobe")


def store_stack(ctx: StepContext, scope: Scope, v: CVal, field: KeyField, into: str,
                out: list[str]) -> KeyField:
    """The stack id of `v` into `into + field.name`; the program keeps a stack map."""
    ctx.prog.uses_stacks = True
    assert v.fill is not None
    if v.code == "user" and not v.copied and unwinds(ctx, scope):
        out.extend(unwound_stack(ctx, f"{into}{field.name}"))  # through libc: unwind.py
    else:
        out.extend(v.fill(f"{into}{field.name}", 8))
    if v.code != "user":
        return field
    ctx.prog.user_stacks = True
    kf = replace(field, kind="ustack",
                 top_return=v.at_return if v.copied else scope.probe.kind in RETURN_PROBES)
    if scope.probe.kind == "uprobe" and not v.copied:
        # At a function's entry its frame is not set up yet, so a frame-pointer walk
        # skips the direct caller (bcc#2555). Its return address is on top of the
        # user stack: keep it and splice it in when symbolizing.
        kf.caller = f"{field.name}_caller"
        out.append(f"bpf_probe_read_user(&{into}{kf.caller}, 8, (void *)PT_REGS_SP(ctx));")
    return kf


def grow_storage(ctx: StepContext, agg: Aggregation, keys: list[KeyField]) -> None:
    """Room in the stack map for as many distinct stacks as the aggregation has keys."""
    stack_keys = sum(k.kind in STACK_KINDS for k in keys)
    if stack_keys and agg.size:
        ctx.prog.stack_storage = max(ctx.prog.stack_storage, agg.size * stack_keys)


def user_stack_tgid(scope: Scope, keys: list[KeyField]) -> str | None:
    """The process a key's user stacks belong to (they symbolize per process), or None
    without user stacks. A stack taken at a span's begin belongs to the begin task."""
    if not any(k.kind == "ustack" for k in keys):
        return None
    if scope.begin_ref and any(k.kind == "ustack" and k.expr.startswith("begin.")
                               for k in keys):
        return scope.begin_ref(Attr(0, 0, Name(0, 0, "begin"), "pid")).code
    return f"{scope.uses.cached('pid_tgid')} >> 32"
