"""Spans: a pending record per span key, stored by the begin handler with the timestamp and
the `begin.` values the end side uses; the end handler looks it up and computes `duration`.

Where both ends are keyed by the current thread and the kernel has task-local storage, the
record lives with the task instead of in a shared hash (Features.task_storage).

Under a run's target, the begin is tested on the thread its `target_task` names (else on the
current task); the end is not tested unless it names one: it completes only begins that
were stored, so filtering the begin is enough. An end's target_task is tested after the
lookup, so that a begin it refuses is consumed all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bpfrun.compile.cexpr import CompileError, CVal, ExprCompiler, Scope, a_type
from bpfrun.compile.lower.aggregation import SIZE_UNITS
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.handlers import add_handler, function_for
from bpfrun.compile.lower.probe import aimed_at_task, predicate, target_task_check
from bpfrun.compile.lower.sharing import lower_aggregations
from bpfrun.compile.lower.stacks import RETURN_PROBES
from bpfrun.compile.lower.units import unit_of
from bpfrun.compile.lower.values import c_field, key_field, store
from bpfrun.compile.program import DEFAULT_MAX_PENDING, AggPlan, KeyField
from bpfrun.expr.nodes import Attr, Name, Node, unparse
from bpfrun.frontend.model import Aggregation, Expr, Span
from bpfrun.kernel.resolve import Resolved

TASK_SLOT = "(struct task_struct *)bpf_get_current_task_btf()"


def strip_head(node: Node) -> Node:
    """begin.args.x → args.x (the begin-side expression)."""
    if isinstance(node, Attr):
        if isinstance(node.obj, Name):
            return Name(node.offset, node.length, node.name)
        return Attr(node.offset, node.length, strip_head(node.obj), node.name)
    raise ValueError(node)


@dataclass
class BeginValues:
    """The begin values the end side reads (`begin.<x>`): each is compiled at the begin
    probe, stored in the pending record (field bN) and read back from `pv` at the end."""

    scope: Scope
    fields: dict[str, tuple[KeyField, CVal, ExprCompiler]] = field(default_factory=dict)

    def ref(self, node: Node) -> CVal:
        inner = strip_head(node)
        text = unparse(inner)
        if text not in self.fields:
            comp = ExprCompiler(self.scope)
            v = comp.value(inner)
            kf = KeyField(f"b{len(self.fields)}", text,
                          {"str": "str", "stack": "stack"}.get(v.type, "int"), v.type, v.size or 8)
            self.fields[text] = (kf, v, comp)
        kf, v, _ = self.fields[text]
        if v.type == "str":
            return CVal("str", direct=f"pv.{kf.name}", size=kf.size, local=True)
        if v.type == "stack":
            return CVal("stack", fill=lambda d, s: [f"{d} = pv.{kf.name};"], code=v.code,
                        copied=True, at_return=self.scope.probe.kind in RETURN_PROBES)
        return CVal(v.type, code=f"pv.{kf.name}", signed=v.signed, decode=v.decode)


@dataclass(frozen=True)
class SpanPlan:
    """The names of a span's C and where its pending records live."""

    pending: str  # the map of pending records
    key_struct: str
    val_struct: str
    per_task: bool  # task-local storage instead of a hash keyed by the span key


def lower_span(ctx: StepContext, span: Span, bres: Resolved, eres: Resolved) -> None:
    plan = span_plan(ctx, span)
    begin = BeginValues(ctx.scope(bres))
    escope = ctx.scope(eres, duration="duration", begin_ref=begin.ref)
    kbody_b, kbody_e, kfields = ([], [], []) if plan.per_task else \
        span_keys(ctx, span, begin.scope, escope)
    # End side first: it discovers which begin values are needed.
    end_guard = predicate(ctx, span.end.where, escope, f"{eres.ref.canonical} (span end)")
    ebody = end_lookup(plan, kbody_e)
    # After the lookup: a begin whose end is not in the target is consumed all the same.
    ebody += target_task_check(ctx, span.end.target_task, escope, eres)
    ebody.append("u64 duration = bpf_ktime_get_ns() - pv.ts;")
    if end_guard is None:
        ebody.append("return 0;")
    else:
        ebody += end_guard
        if ctx.prog.stop_after:
            ebody.append("bpfrun_hit();")
        ebody += lower_aggregations(ctx, span.aggregate, escope)
    for agg in span.pending:
        pending_aggregation(ctx, agg, begin, plan.pending)
    begin_guard = predicate(ctx, span.begin.where, begin.scope,
                            f"{bres.ref.canonical} (span begin)")
    btarget = target_task_check(ctx, span.begin.target_task, begin.scope, bres)
    bbody = begin_store(ctx, span, plan, kbody_b, kfields, begin, btarget + (begin_guard or []))
    # The end's function first: its handler runs before the begin's on a shared probe.
    efn = function_for(ctx, eres)
    add_handler(ctx, efn, eres, f"span end {eres.ref.canonical} (runbook {span.end.loc})",
                ebody, escope.uses)
    ctx.prog.handlers[-1].span_end = True  # a target filters its begins (lower/target.py)
    ctx.prog.handlers[-1].target_task = aimed_at_task(ctx, span.end.target_task)
    if begin_guard is not None:
        bfn = function_for(ctx, bres)
        add_handler(ctx, bfn, bres, f"span begin {bres.ref.canonical} (runbook {span.begin.loc})",
                    bbody, begin.scope.uses)
        ctx.prog.handlers[-1].target_task = aimed_at_task(ctx, span.begin.target_task)


def span_plan(ctx: StepContext, span: Span) -> SpanPlan:
    """Both ends keyed by the current thread (syscall entry/exit): the begin can live with
    the task (task-local storage) instead of a shared hash — no hashing, no delete, no map
    to fill up (bench/RESULTS.md: -40 ns per event). Open begins then cannot be listed, so
    `pending:` aggregations keep the hash."""
    per_task = (ctx.features.task_storage and not span.pending
                and [e.text for e in span.begin.key] == ["tid"]
                and [e.text for e in span.end.key] == ["tid"])
    sid = ctx.step.id
    plan = SpanPlan(f"pending_{sid}", f"bpfrun_{sid}_span_key", f"bpfrun_{sid}_span_val",
                    per_task)
    ctx.prog.span_storage = "task" if per_task else "hash"
    # Task storage cannot be listed: begins left unpaired are not counted.
    ctx.prog.pending_map = None if per_task else plan.pending
    return plan


def span_keys(ctx: StepContext, span: Span, bscope: Scope,
              escope: Scope) -> tuple[list[str], list[str], list[str]]:
    """The statements filling `key` at the begin and at the end, and the key's fields:
    begin and end must give the same key for the same thing."""
    kbody_b: list[str] = []
    kbody_e: list[str] = []
    kfields: list[str] = []
    bcomp, ecomp = ExprCompiler(bscope), ExprCompiler(escope)
    if len(span.begin.key) != len(span.end.key):
        ctx.error("span begin and end need keys of the same length", span.end.loc)
    for i, (bk, ek) in enumerate(zip(span.begin.key, span.end.key, strict=False)):
        kb = key_field(ctx, bcomp, bk, bk.node, f"k{i}", "key.", kbody_b)
        ke = key_field(ctx, ecomp, ek, ek.node, f"k{i}", "key.", kbody_e)
        if kb and ke and kb.kind != ke.kind:
            ctx.error(f"span key {i + 1}: begin gives {a_type(kb.vtype)}, "
                      f"end {a_type(ke.vtype)}", ek.loc)
        if kb:
            kb.size = max(kb.size, ke.size if ke else 0)
            kfields.append(c_field(kb))
    return kbody_b, kbody_e, kfields


def end_lookup(plan: SpanPlan, key_lines: list[str]) -> list[str]:
    """The end handler's first statements: take the pending record into `pv`, or return."""
    val = plan.val_struct
    if plan.per_task:
        return [f"struct {val} *pp = {plan.pending}.task_storage_get({TASK_SLOT}, 0, 0);",
                "if (!pp || pp->ts == 0) return 0;",
                f"struct {val} pv = *pp;",
                "pp->ts = 0;  /* consumed: the slot stays with the task */"]
    return [f"struct {plan.key_struct} key;", "__builtin_memset(&key, 0, sizeof(key));",
            *key_lines,
            f"struct {val} *pp = {plan.pending}.lookup(&key);", "if (!pp) return 0;",
            f"struct {val} pv = *pp;", f"{plan.pending}.delete(&key);"]


def begin_store(ctx: StepContext, span: Span, plan: SpanPlan, key_lines: list[str],
                kfields: list[str], begin: BeginValues, guard: list[str]) -> list[str]:
    """The begin handler: the pending record with the begin values the end uses, stored
    under the key (or with the task); declares the record, the key and their map."""
    body = list(guard)
    if not plan.per_task:
        body += [f"struct {plan.key_struct} key;", "__builtin_memset(&key, 0, sizeof(key));",
                 *key_lines]
    body += [f"struct {plan.val_struct} val;", "__builtin_memset(&val, 0, sizeof(val));"]
    vfields = ["u64 ts;"]
    for kf, v, comp in begin.fields.values():
        dummy = Expr(kf.expr, Name(0, 1, kf.expr), span.begin.loc)
        stored = store(ctx, comp, v, dummy, dummy.node, kf.name, "val.", body)
        vfields.append(c_field(stored or kf))  # with a uprobe's caller, when kept
    body.append("val.ts = bpf_ktime_get_ns();")
    ctx.prog.structs.append(f"struct {plan.val_struct} {{ " + " ".join(vfields) + " };")
    if plan.per_task:
        body += [f"struct {plan.val_struct} *slot = {plan.pending}.task_storage_get("
                 f"{TASK_SLOT}, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);",
                 "if (slot) *slot = val; else bpfrun_lost(LOST_PENDING_FULL);"]
        ctx.prog.maps.append(f"BPF_TASK_STORAGE({plan.pending}, struct {plan.val_struct});")
        return body
    body.append(f"if ({plan.pending}.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);")
    ctx.prog.structs.append(f"struct {plan.key_struct} {{ " + (" ".join(kfields) or "u32 _k;")
                            + " };")
    size = span.max_pending or DEFAULT_MAX_PENDING
    ctx.prog.maps.append(f"BPF_HASH({plan.pending}, struct {plan.key_struct}, "
                         f"struct {plan.val_struct}, {size});")
    return body


def pending_aggregation(ctx: StepContext, agg: Aggregation, begin: BeginValues,
                        pending: str) -> None:
    """An aggregation over the begins still open at the end (e.g. unfreed allocations):
    its keys and value are begin values stored anyway, so it costs nothing in the kernel;
    user space aggregates the pending map when the step ends."""
    if agg.kind not in ("count", "sum") or agg.where is not None:
        ctx.error("pending aggregations are count or sum, without where", agg.loc)
        return
    keys = [k for k in (begin_field(ctx, b, begin) for b in agg.by) if k is not None]
    value = begin_field(ctx, agg.value, begin) if agg.value is not None else None
    tgid = None
    if any(k.kind == "ustack" for k in keys):
        begin.ref(Attr(0, 0, Name(0, 0, "begin"), "pid"))
        tgid = begin.fields["pid"][0].name
    vtype = value.vtype if value and value.vtype in ("duration", "size") else "int"
    if value and vtype == "int" and agg.unit:
        vtype = "size" if agg.unit in SIZE_UNITS else "duration"
    unit, scale, _ = unit_of(ctx, agg, vtype)
    ctx.prog.aggs.append(AggPlan(agg.id, agg.kind, pending, None, keys, vtype, unit, scale,
                                 agg.top, None, pending=True,
                                 value_field=value.name if value else None, tgid_field=tgid))


def begin_field(ctx: StepContext, expr: Expr, begin: BeginValues) -> KeyField | None:
    """The field of the pending record that holds `expr` (a begin value), as user space
    reads it back."""
    if not (unparse(expr.node).startswith("begin.") and isinstance(expr.node, Attr)):
        ctx.error("pending aggregations use begin values: write begin.<x>", expr.loc)
        return None
    try:
        begin.ref(expr.node)
    except CompileError as e:
        ctx.compile_error(e, expr)
        return None
    kf, v, _ = begin.fields[unparse(strip_head(expr.node))]
    kind = kf.kind
    if v.type == "stack":
        ctx.prog.uses_stacks = True
        kind = "ustack" if v.code == "user" else "stack"
    return KeyField(kf.name, expr.text, kind, kf.vtype, kf.size, signed=v.signed,
                    top_return=kind == "ustack" and begin.scope.probe.kind in RETURN_PROBES)
