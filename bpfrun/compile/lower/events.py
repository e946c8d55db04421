"""Events: the record a probe emits, its limit, and how it reaches user space (the BPF ring
buffer, or the perf buffer on kernels without one)."""

from __future__ import annotations

from bpfrun.compile.cexpr import ExprCompiler, Scope
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.values import c_field, key_field
from bpfrun.compile.program import EventPlan, KeyField
from bpfrun.frontend.model import Probe
from bpfrun.kernel.resolve import Resolved


def lower_events(ctx: StepContext, probe: Probe, res: Resolved, scope: Scope) -> list[str]:
    """The statements that emit one record of `probe.emit` (a block that `break`s out)."""
    index = len(ctx.prog.events)
    sname = f"bpfrun_ev{index}"
    ringbuf = ctx.prog.event_buffer == "ringbuf"
    # A ring-buffer record is written in place; a perf-buffer one is built on the stack.
    into = "e->" if ringbuf else "e."
    comp = ExprCompiler(scope)
    fills: list[str] = []
    fields: list[KeyField] = []
    for i, e in enumerate(probe.emit):
        kf = key_field(ctx, comp, e, e.node, f"f{i}", into, fills)
        if kf is not None:
            fields.append(kf)
    if any(k.kind == "ustack" for k in fields):
        fills.append(f"{into}tgid = {scope.uses.cached('pid_tgid')} >> 32;")
    cfields = [c_field(k) for k in fields]
    cfields.append("u32 tgid;")
    ctx.prog.structs.append(f"struct {sname} {{ u32 probe; " + " ".join(cfields) + " };")
    if probe.limit:
        body = [f"if (!bpfrun_emit_allowed({index}, {probe.limit})) break;"]
    else:
        body = [f"bpfrun_emit_allowed({index}, 0);"]
    if ringbuf:
        body += [f"struct {sname} *e = events.ringbuf_reserve(sizeof(struct {sname}));",
                 "if (!e) { bpfrun_lost(LOST_EVENTS); break; }",
                 f"e->probe = {index};", "e->tgid = 0;", *fills,
                 "events.ringbuf_submit(e, 0);"]
    else:  # user space counts the perf buffer's losses
        body += [f"struct {sname} e;", "__builtin_memset(&e, 0, sizeof(e));",
                 f"e.probe = {index};", *fills, "events.perf_submit(ctx, &e, sizeof(e));"]
    ctx.prog.events.append(EventPlan(index, res.ref.canonical, probe.id or f"events{index}",
                                     fields, probe.limit))
    return ["/* events */", "do {", *("    " + line for line in body), "} while (0);"]
