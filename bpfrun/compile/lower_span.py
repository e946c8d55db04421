"""Lowering of spans: a pending map keyed by the span key, begin handlers that store the
timestamp and the referenced `begin.` values, end handlers that compute `duration`.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable

from bpfrun.compile.cexpr import CompileError, CVal, ExprCompiler, a_type
from bpfrun.compile.lower_aggs import AggregationLowering
from bpfrun.compile.program import DEFAULT_MAX_PENDING, AggPlan, KeyField
from bpfrun.expr.nodes import Attr, Name, Node, unparse
from bpfrun.frontend.model import Aggregation, Expr


def task_storage_available() -> bool:
    """Task-local storage from tracing programs needs Linux 5.11+ with BTF.
    BPFRUN_SPAN_STORAGE=hash|task overrides (tests exercise both here)."""
    forced = os.environ.get("BPFRUN_SPAN_STORAGE")
    if forced in ("hash", "task"):
        return forced == "task"
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    new_enough = m is not None and (int(m.group(1)), int(m.group(2))) >= (5, 11)
    return new_enough and os.path.exists("/sys/kernel/btf/vmlinux")


def _strip_head(node: Node) -> Node:
    """begin.args.x → args.x (the begin-side expression)."""
    if isinstance(node, Attr):
        if isinstance(node.obj, Name):
            return Name(node.offset, node.length, node.name)
        return Attr(node.offset, node.length, _strip_head(node.obj), node.name)
    raise ValueError(node)


class SpanLowering(AggregationLowering):
    def span(self) -> None:
        span = self.step.span
        assert span is not None
        bres = self.resolve(span.begin.candidates, span.begin.loc)
        eres = self.resolve(span.end.candidates, span.end.loc)
        if bres is None or eres is None:
            return
        pending = f"pending_{self.step.id}"
        self.prog.pending_map = pending
        begin_fields: dict[str, tuple[KeyField, CVal, ExprCompiler]] = {}
        begin_scope = self.scope(bres)

        def begin_ref(node: Node) -> CVal:
            inner = _strip_head(node)
            text = unparse(inner)
            if text not in begin_fields:
                comp = ExprCompiler(begin_scope)
                v = comp.value(inner)
                name = f"b{len(begin_fields)}"
                kf = KeyField(name, text, {"str": "str", "stack": "stack"}.get(v.type, "int"),
                              v.type, v.size or 8)
                begin_fields[text] = (kf, v, comp)
            kf, v, _ = begin_fields[text]
            if v.type == "str":
                return CVal("str", direct=f"pv.{kf.name}", size=kf.size, local=True)
            if v.type == "stack":
                return CVal("stack", fill=lambda d, s: [f"{d} = pv.{kf.name};"], code=v.code)
            return CVal(v.type, code=f"pv.{kf.name}", signed=v.signed, decode=v.decode)

        # Keys: begin and end must give the same key for the same thing.
        kbody_b: list[str] = []
        kbody_e: list[str] = []
        kfields: list[str] = []
        bcomp = ExprCompiler(begin_scope)
        escope = self.scope(eres, duration="duration", begin_ref=begin_ref)
        ecomp = ExprCompiler(escope)
        if len(span.begin.key) != len(span.end.key):
            self.error("span begin and end need keys of the same length", span.end.loc)
        for i, (bk, ek) in enumerate(zip(span.begin.key, span.end.key, strict=False)):
            kb = self.key_field(bcomp, bk, bk.node, f"k{i}", "key", kbody_b)
            ke = self.key_field(ecomp, ek, ek.node, f"k{i}", "key", kbody_e)
            if kb and ke and kb.kind != ke.kind:
                self.error(f"span key {i + 1}: begin gives {a_type(kb.vtype)}, "
                           f"end {a_type(ke.vtype)}",
                           ek.loc)
            if kb:
                kb.size = max(kb.size, ke.size if ke else 0)
                kfields.append(self.c_field(kb))
        kstruct = f"bpfrun_{self.step.id}_span_key"
        vstruct = f"bpfrun_{self.step.id}_span_val"
        # Both ends keyed by the current thread (syscall entry/exit): the begin can live with
        # the task (task-local storage) instead of a shared hash — no hashing, no delete, no
        # map to fill up (bench/RESULTS.md: -40 ns per event). Open begins then cannot be
        # listed, so `pending:` aggregations keep the hash.
        per_task = (task_storage_available() and not span.pending
                    and [e.text for e in span.begin.key] == ["tid"]
                    and [e.text for e in span.end.key] == ["tid"])

        # End side first: it discovers which begin values are needed.
        end_guard = self.guard(span.end.where, escope, f"{eres.ref.canonical} (span end)")
        if per_task:
            ebody = [f"struct {vstruct} *pp = {pending}.task_storage_get("
                     "(struct task_struct *)bpf_get_current_task_btf(), 0, 0);",
                     "if (!pp || pp->ts == 0) return 0;",
                     f"struct {vstruct} pv = *pp;",
                     "pp->ts = 0;  /* consumed: the slot stays with the task */"]
        else:
            ebody = [f"struct {kstruct} key;", "__builtin_memset(&key, 0, sizeof(key));",
                     *kbody_e,
                     f"struct {vstruct} *pp = {pending}.lookup(&key);", "if (!pp) return 0;",
                     f"struct {vstruct} pv = *pp;", f"{pending}.delete(&key);"]
        ebody.append("u64 duration = bpf_ktime_get_ns() - pv.ts;")
        if end_guard is None:
            ebody.append("return 0;")
        else:
            ebody += end_guard
            if self.prog.stop_after:
                ebody.append("bpfrun_hit();")
            for agg in span.aggregate:
                try:
                    ebody += self.aggregation(agg, escope)
                except CompileError as e:  # raised from begin_ref
                    self.error(str(e), agg.loc, e.hint)
        for agg in span.pending:
            self.pending_aggregation(agg, begin_ref, begin_fields, pending)
        begin_guard = self.guard(span.begin.where, begin_scope,
                                 f"{bres.ref.canonical} (span begin)")
        vfields = ["u64 ts;"] + [self.c_field(kf) for kf, _, _ in begin_fields.values()]
        bbody = list(begin_guard or [])
        if not per_task:
            bbody += [f"struct {kstruct} key;", "__builtin_memset(&key, 0, sizeof(key));",
                      *kbody_b]
        bbody += [f"struct {vstruct} val;", "__builtin_memset(&val, 0, sizeof(val));"]
        for kf, v, comp in begin_fields.values():
            dummy = Expr(kf.expr, Name(0, 1, kf.expr), span.begin.loc)
            self.store(v, dummy, dummy.node, kf.name, "val", bbody, comp)
            if v.type == "stack":
                self.prog.uses_stacks = True
        bbody.append("val.ts = bpf_ktime_get_ns();")
        self.prog.structs.append(f"struct {vstruct} {{ " + " ".join(vfields) + " };")
        if per_task:
            bbody += [f"struct {vstruct} *slot = {pending}.task_storage_get((struct task_struct *)"
                      "bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);",
                      "if (slot) *slot = val; else bpfrun_lost(LOST_PENDING_FULL);"]
            self.prog.maps.append(f"BPF_TASK_STORAGE({pending}, struct {vstruct});")
            self.prog.pending_map = None  # task storage cannot be listed: unpaired not counted
        else:
            bbody.append(f"if ({pending}.update(&key, &val) != 0) "
                         "bpfrun_lost(LOST_PENDING_FULL);")
            self.prog.structs.append(f"struct {kstruct} {{ " + (" ".join(kfields) or "u32 _k;")
                                     + " };")
            size = span.max_pending or DEFAULT_MAX_PENDING
            self.prog.maps.append(
                f"BPF_HASH({pending}, struct {kstruct}, struct {vstruct}, {size});")
        efn = self.function_for(eres)
        self.add_handler(efn, eres, f"span end {eres.ref.canonical} (runbook {span.end.loc})",
                         ebody)
        if begin_guard is not None:
            bfn = self.function_for(bres)
            self.add_handler(bfn, bres,
                             f"span begin {bres.ref.canonical} (runbook {span.begin.loc})", bbody)

    def pending_aggregation(self, agg: Aggregation, begin_ref: Callable[[Node], CVal],
                            begin_fields: dict[str, tuple[KeyField, CVal, ExprCompiler]],
                            pending: str) -> None:
        """An aggregation over the begins still open at the end (e.g. unfreed allocations):
        its keys and value are begin values stored anyway, so it costs nothing in the kernel;
        user space aggregates the pending map when the step ends."""
        if agg.kind not in ("count", "sum") or agg.where is not None:
            self.error("pending aggregations are count or sum, without where", agg.loc)
            return

        def field(expr: Expr) -> KeyField | None:
            if not (unparse(expr.node).startswith("begin.") and isinstance(expr.node, Attr)):
                self.error("pending aggregations use begin values: write begin.<x>", expr.loc)
                return None
            try:
                begin_ref(expr.node)
            except CompileError as e:
                self.compile_error(e, expr)
                return None
            kf, v, _ = begin_fields[unparse(_strip_head(expr.node))]
            kind = kf.kind
            if v.type == "stack":
                self.prog.uses_stacks = True
                kind = "ustack" if v.code == "user" else "stack"
            return KeyField(kf.name, expr.text, kind, kf.vtype, kf.size, signed=v.signed)

        keys = [k for k in (field(b) for b in agg.by) if k is not None]
        value = field(agg.value) if agg.value is not None else None
        tgid = None
        if any(k.kind == "ustack" for k in keys):
            begin_ref(Attr(0, 0, Name(0, 0, "begin"), "pid"))
            tgid = begin_fields["pid"][0].name
        vtype = value.vtype if value and value.vtype in ("duration", "size") else "int"
        if value and vtype == "int" and agg.unit:
            vtype = "size" if agg.unit in ("bytes", "KiB", "MiB") else "duration"
        unit, scale, _ = self.unit_of(agg, vtype)
        self.prog.aggs.append(AggPlan(agg.id, agg.kind, pending, None, keys, vtype, unit, scale,
                                      agg.top, None, pending=True,
                                      value_field=value.name if value else None,
                                      tgid_field=tgid))
