"""Lower: one step of a runbook → a Program (maps, structs, probe functions, attach plan).

Every decision about the generated C is made here, in Python; the template only lays the
pieces out. Aggregations live in per-CPU hash maps (no atomics on the hot path), predicates
run before any map lookup, and every way data can be lost (full maps, failed stack ids,
ring-buffer overflow, begins without an end) is counted in a map the runner reads.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from typing import Any

from bpfrun.cexpr import (
    USDT_READARG,
    CompileError,
    CVal,
    ExprCompiler,
    ProbeCtx,
    Scope,
)
from bpfrun.cstr import c_comment
from bpfrun.errors import Diagnostics, Loc, MachineError
from bpfrun.expr.nodes import Attr, Name, Node, unparse
from bpfrun.kernel import Kernel, TracepointFormat
from bpfrun.model import Aggregation, Expr, Probe, Step, Template
from bpfrun.resolve import Resolved, parse_probe, resolve_probe
from bpfrun.units import HIST_UNITS, parse_duration, parse_size

DEFAULT_MAP_SIZE = 10240
HIST_SLOTS = 64
DEFAULT_MAX_PENDING = 10240
STACK_STORAGE = 16384
LOST_KINDS = ("map_full", "stacks", "events", "pending_full")
_CTX_TYPES = {
    "tracepoint": "void", "rawtracepoint": "struct bpf_raw_tracepoint_args",
    "kprobe": "struct pt_regs", "kretprobe": "struct pt_regs", "uprobe": "struct pt_regs",
    "uretprobe": "struct pt_regs", "usdt": "struct pt_regs",
    "profile": "struct bpf_perf_event_data", "software": "struct bpf_perf_event_data",
}


@dataclass
class KeyField:
    """One field of a map key or event record, and how to read it back in user space."""

    name: str  # C field name
    expr: str  # as written in the runbook (the result key)
    kind: str  # int | str | stack | ustack | tgid
    vtype: str  # int duration size bool str stack
    size: int = 8
    decode: str | None = None  # "syscall": an int shown by name
    caller: str | None = None  # ustack at a uprobe: field with the return address


@dataclass
class AggPlan:
    id: str
    kind: str
    map: str
    stats_map: str | None
    keys: list[KeyField]
    value_type: str  # int | duration | size
    unit: str | None
    scale: int  # base units per display unit
    top: int | None
    lhist: tuple[int, int, int] | None  # native min, max, step


@dataclass
class EventPlan:
    index: int
    probe: str
    id: str
    fields: list[KeyField]
    limit: int | None


@dataclass
class AttachPlan:
    kind: str
    target: tuple[str, ...]  # tracepoint (cat, event); rawtp (event,); uprobe (path, sym); ...
    fn_name: str
    probe: str  # canonical probe that runs
    requested: str  # the probe as first written
    skipped: list[str]  # why earlier candidates were not used


@dataclass
class Function:
    name: str
    ctx_type: str
    comment: str
    prologue: list[str]
    handlers: list[str]  # names of inline handler functions called in order


@dataclass
class Handler:
    name: str
    ctx_type: str
    comment: str
    body: list[str]


@dataclass
class Program:
    step_id: str
    structs: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    attaches: list[AttachPlan] = field(default_factory=list)
    aggs: list[AggPlan] = field(default_factory=list)
    events: list[EventPlan] = field(default_factory=list)
    pending_map: str | None = None
    uses_stacks: bool = False
    event_buffer: str = "ringbuf"  # or "perf" where the kernel has no BPF ring buffer
    stop_after: int | None = None
    interval: float | None = None  # seconds between snapshots of the aggregations
    predicates: dict[str, str] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)  # kernel checks skipped (unreadable)


def _tp_struct(fmt: TracepointFormat) -> tuple[str, str]:
    """C struct laid out exactly like the tracepoint record, from the kernel's format file."""
    name = f"bpfrun_tp_{fmt.category}_{fmt.event}"
    lines = [f"struct {name} {{", f"    u8 __common[{fmt.common_size}];"]
    offset = fmt.common_size
    checks = []
    for i, f in enumerate(fmt.fields):
        if f.offset > offset:
            lines.append(f"    u8 __pad{i}[{f.offset - offset}];")
        elif f.offset < offset:
            continue  # overlapping (unions): skip, never misread
        if f.kind == "chararray":
            ctype = f"char {f.name}[{f.size}]"
        elif f.kind == "int" and f.size in (1, 2, 4, 8):
            ctype = f"{'s' if f.signed else 'u'}{f.size * 8} {f.name}"
        else:
            ctype = f"u8 {f.name}[{f.size}]" if f.size not in (4, 8) or f.kind == "array" \
                else f"u{f.size * 8} {f.name}"
        lines.append(f"    {ctype};")
        checks.append(f"_Static_assert(__builtin_offsetof(struct {name}, {f.name}) == "
                      f"{f.offset}, \"{f.name}\");")
        offset = f.offset + f.size
    lines.append("};")
    return name, "\n".join(lines + checks)


_USDT_CALL = re.compile(re.escape(USDT_READARG) + r"\((\d+), (\w+)\);")


def _usdt_reader(line: str, fn_name: str) -> str:
    """BPFRUN_USDT_READARG(2, v); → BCC's generated reader of fn_name's 2nd argument."""
    return _USDT_CALL.sub(lambda m: f"_bpf_readarg_{fn_name}_{m.group(1)}(ctx, &{m.group(2)}, "
                                    f"sizeof({m.group(2)}));", line)


def event_buffer() -> str:
    """The BPF ring buffer needs Linux 5.8; older kernels get the perf buffer.
    BPFRUN_EVENT_BUFFER=perf|ringbuf overrides (tests exercise both here)."""
    forced = os.environ.get("BPFRUN_EVENT_BUFFER")
    if forced in ("perf", "ringbuf"):
        return forced
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return "ringbuf" if m and (int(m.group(1)), int(m.group(2))) >= (5, 8) else "perf"


def _strip_head(node: Node) -> Node:
    """begin.args.x → args.x (the begin-side expression)."""
    if isinstance(node, Attr):
        if isinstance(node.obj, Name):
            return Name(node.offset, node.length, node.name)
        return Attr(node.offset, node.length, _strip_head(node.obj), node.name)
    raise ValueError(node)


class Lowerer:
    def __init__(self, step: Step, consts: dict[str, Any], kernel: Kernel,
                 substitute: Any, require_probes: bool = True) -> None:
        self.require_probes = require_probes
        self.step = step
        self.consts = consts
        self.kernel = kernel
        self.substitute = substitute  # Template → str (params and earlier steps bound)
        self.diags = Diagnostics()
        self.prog = Program(step.id, stop_after=step.stop_after, event_buffer=event_buffer())
        self.counter = 0
        self.functions: dict[tuple[str, ...], Function] = {}
        self.tp_structs: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def error(self, message: str, loc: Loc | None, hint: str | None = None) -> None:
        self.diags.error(message, loc, hint)

    def compile_error(self, e: CompileError, expr: Expr) -> None:
        self.error(str(e), expr.at(e.node), e.hint)

    def scope(self, res: Resolved, **kw: Any) -> Scope:
        return Scope(res.ctx, self.consts, fresh=self.fresh, **kw)

    def resolve(self, candidates: tuple[Template, ...], loc: Loc) -> Resolved | None:
        texts = [self.substitute(t) for t in candidates]
        try:
            res, reasons = resolve_probe(texts, self.kernel)
        except ValueError as e:
            self.error(str(e), loc)
            return None
        if res is None:
            if self.require_probes:
                raise MachineError(
                    f"step '{self.step.id}': no usable probe: " + "; ".join(reasons),
                    "add a fallback probe that exists here (bpfrun probes PATTERN)")
            # Compiling for another machine: show the C of the first probe as written.
            ref = parse_probe(texts[0])
            self.prog.unchecked.append(f"probe {ref.text} cannot run here: {reasons[0]}")
            return Resolved(ref, ProbeCtx(ref.kind, ref.text), None, False)
        if not res.checked:
            self.prog.unchecked.append(f"probe {res.ref.text} (kernel not readable)")
        return res

    def function_for(self, res: Resolved, requested: str, skipped: list[str]) -> Function:
        key = (res.ref.canonical, res.target or "")
        if key in self.functions:
            return self.functions[key]
        fn = Function(self.fresh(f"bpfrun_{self.step.id}_probe"), _CTX_TYPES[res.ref.kind],
                      c_comment(res.ref.canonical), [], [])
        if res.ref.kind == "tracepoint" and res.ctx.fmt is not None:
            sname, decl = _tp_struct(res.ctx.fmt)
            self.tp_structs.setdefault(sname, decl)
            fn.prologue.append(f"struct {sname} *args = ctx;")
        target = res.ref.parts
        if res.target:
            target = (res.target, *res.ref.parts[1:])
        self.prog.attaches.append(AttachPlan(res.ref.kind, target, fn.name, res.ref.canonical,
                                             requested, skipped))
        self.prog.functions.append(fn)
        self.functions[key] = fn
        return fn

    def add_handler(self, fn: Function, res: Resolved, comment: str, body: list[str]) -> None:
        name = f"{fn.name}_h{len(fn.handlers)}"
        prologue = list(fn.prologue)
        if res.ref.kind == "usdt":
            body = [_usdt_reader(line, fn.name) for line in body]
        self.prog.handlers.append(Handler(name, fn.ctx_type, c_comment(comment),
                                          prologue + body))
        fn.handlers.append(name)

    # -- predicates, keys, aggregations ------------------------------------------------
    def guard(self, expr: Expr | None, scope: Scope, what: str) -> list[str] | None:
        """Statements that return early unless `expr` holds; None when it can never hold."""
        if expr is None:
            return []
        comp = ExprCompiler(scope)
        try:
            v = comp.predicate(expr.node)
        except CompileError as e:
            self.compile_error(e, expr)
            return []
        self.prog.predicates[what] = expr.text
        if v.is_const:
            return [] if v.const else None
        return [*comp.pre, f"if (!{v.code}) return 0;"]

    def key_field(self, comp: ExprCompiler, expr: Expr, node: Node, name: str,
                  dest: str, out: list[str]) -> KeyField | None:
        try:
            v = comp.value(node)
        except CompileError as e:
            self.compile_error(e, expr)
            return None
        return self.store(v, expr, node, name, dest, out, comp)

    def store(self, v: CVal, expr: Expr, node: Node, name: str, dest: str, out: list[str],
              comp: ExprCompiler) -> KeyField | None:
        """Write value v into field `dest.name`; describe that field."""
        text = unparse(node) if node is not expr.node else expr.text
        if v.type == "str":
            if v.is_const:
                self.error("a constant string is not a useful key or field", expr.at(node))
                return None
            out.extend(comp.pre)
            comp.pre.clear()
            src = v.direct
            if src:
                out.append(f"bpf_probe_read_kernel(&{dest}.{name}, {v.size}, {src});")
            else:
                assert v.fill is not None
                out.extend(v.fill(f"{dest}.{name}", v.size))
            return KeyField(name, text, "str", "str", v.size)
        if v.type == "stack":
            self.prog.uses_stacks = True
            assert v.fill is not None
            out.extend(v.fill(f"{dest}.{name}", 4))
            is_user = v.code == "user"
            kf = KeyField(name, text, "ustack" if is_user else "stack", "stack", 4)
            if is_user and comp.scope.probe.kind == "uprobe" and "pv." not in out[-1]:
                # At a function's entry its frame is not set up yet, so a frame-pointer walk
                # skips the direct caller (bcc#2555). Its return address is on top of the
                # user stack: keep it and splice it in when symbolizing.
                kf.caller = f"{name}_caller"
                out.append(f"bpf_probe_read_user(&{dest}.{kf.caller}, 8, "
                           "(void *)PT_REGS_SP(ctx));")
            return kf
        if v.type == "ptr":
            v = CVal("int", code=v.code)
        if v.type not in ("int", "bool", "duration", "size", "any"):
            self.error(f"a {v.type} cannot be stored here", expr.at(node))
            return None
        out.extend(comp.pre)
        comp.pre.clear()
        out.append(f"{dest}.{name} = {v.code};")
        return KeyField(name, text, "int", "int" if v.type == "any" else v.type,
                        decode=v.decode)

    def aggregation(self, agg: Aggregation, scope: Scope) -> list[str]:
        comp = ExprCompiler(scope)
        mname = f"agg_{agg.id}"
        sname = f"bpfrun_{agg.id}_key"
        body: list[str] = []
        if agg.where is not None:
            try:
                w = comp.predicate(agg.where.node)
            except CompileError as e:
                self.compile_error(e, agg.where)
                return []
            if w.is_const and not w.const:
                return []
            if not w.is_const:
                body += [*comp.pre, f"if (!{w.code}) break;"]
                comp.pre.clear()
        body.append(f"struct {sname} k;")
        body.append("__builtin_memset(&k, 0, sizeof(k));")
        keys: list[KeyField] = []
        for i, b in enumerate(agg.by):
            kf = self.key_field(comp, b, b.node, f"k{i}", "k", body)
            if kf is not None:
                keys.append(kf)
        if any(k.kind == "ustack" for k in keys):
            # User stacks symbolize per process: keep the tgid in the key (not shown). A
            # stack taken at a span's begin belongs to the begin task, not the current one.
            tgid = "bpf_get_current_pid_tgid() >> 32"
            if scope.begin_ref and any(k.kind == "ustack" and k.expr.startswith("begin.")
                                       for k in keys):
                tgid = scope.begin_ref(Attr(0, 0, Name(0, 0, "begin"), "pid")).code
            body.append(f"k.tgid = {tgid};")
        value_type, value_code = "int", "1"
        if agg.value is not None:
            try:
                v = comp.value(agg.value.node)
            except CompileError as e:
                self.compile_error(e, agg.value)
                return []
            if v.type not in ("int", "duration", "size", "ptr", "any", "bool"):
                self.error(f"{agg.kind} needs a number, duration or size, not a {v.type}",
                           agg.value.loc)
                return []
            body += comp.pre
            value_type = v.type if v.type in ("duration", "size") else "int"
            if value_type == "int" and agg.unit:  # a plain number's unit says what it is
                value_type = "size" if agg.unit in ("bytes", "KiB", "MiB") else "duration"
            value_code = v.code if not v.is_const else str(v.code)
        fields = [self.c_field(k) for k in keys]
        if any(k.kind == "ustack" for k in keys):
            fields.append("u32 tgid;")
        unit, scale, lbounds = self.unit_of(agg, value_type)
        stats_map = None
        if agg.kind in ("hist", "lhist"):
            fields.append("u32 slot;")
            stats_map = f"{mname}_stats"
            body.append(f"u64 x = {value_code};")
            body.append(f"k.slot = {self.slot_code(agg, scale, lbounds)};")
            body += self.counter_update(mname, "1", "k")
            body.append("k.slot = 0xFFFFFFFF;  /* the per-key stats entry */")
            body += self.stats_update(stats_map, "x", "k")
        elif agg.kind == "count":
            body += self.counter_update(mname, "1", "k")
        elif agg.kind == "sum":
            body += self.counter_update(mname, value_code, "k")
        else:
            body.append(f"s64 x = (s64)({value_code});")
            body += self.stats_update(mname, "x", "k")
        if not fields:
            fields.append("u32 _unused;")
        self.prog.structs.append(f"struct {sname} {{ " + " ".join(fields) + " };")
        size = agg.size or DEFAULT_MAP_SIZE
        vtype = "u64" if agg.kind in ("count", "sum", "hist", "lhist") else "struct bpfrun_stats"
        hsize = size * 8 if agg.kind in ("hist", "lhist") else size
        self.prog.maps.append(f"BPF_PERCPU_HASH({mname}, struct {sname}, {vtype}, {hsize});")
        if stats_map:
            self.prog.maps.append(
                f"BPF_PERCPU_HASH({stats_map}, struct {sname}, struct bpfrun_stats, {size});")
        self.prog.aggs.append(AggPlan(agg.id, agg.kind, mname, stats_map, keys, value_type,
                                      unit, scale, agg.top, lbounds))
        return [f"/* aggregation {agg.id}: {agg.kind} (runbook {agg.loc}) */",
                "do {", *("    " + line for line in body), "} while (0);"]

    @staticmethod
    def c_field(k: KeyField) -> str:
        if k.kind == "str":
            return f"char {k.name}[{k.size}];"
        if k.caller:
            return f"s32 {k.name}; u64 {k.caller};"
        if k.kind in ("stack", "ustack"):
            return f"s32 {k.name};"
        return f"u64 {k.name};"

    def unit_of(self, agg: Aggregation, vtype: str) -> tuple[str | None, int,
                                                             tuple[int, int, int] | None]:
        unit = agg.unit or {"duration": "ns", "size": "bytes"}.get(vtype)
        scale = HIST_UNITS.get(unit, 1) if unit else 1
        if vtype == "duration" and unit in ("bytes", "KiB", "MiB"):
            self.error(f"'{unit}' is not a unit of time", agg.loc, "use ns, us, ms or s")
        lbounds = None
        if agg.kind == "lhist" and agg.bounds:
            try:
                lo, hi, st = (self.bound(b, scale, vtype) for b in agg.bounds)
            except ValueError as e:
                self.error(f"lhist bounds: {e}", agg.loc)
                lo, hi, st = 0, 100, 10
            if st <= 0 or hi <= lo or (hi - lo) // st > 1000:
                self.error("lhist needs min < max and 0 < step, with at most 1000 buckets",
                           agg.loc)
                lo, hi, st = 0, 100, 10
            lbounds = (lo, hi, st)
        elif agg.kind == "lhist":
            self.error("lhist needs min, max and step", agg.loc)
            lbounds = (0, 100, 10)
        return unit, scale, lbounds

    @staticmethod
    def bound(value: Any, scale: int, vtype: str) -> int:
        if value is None:
            raise ValueError("min, max and step are all required")
        if isinstance(value, int) and not isinstance(value, bool):
            return value * scale
        text = str(value)
        return parse_duration(text) if vtype == "duration" else parse_size(text)

    @staticmethod
    def slot_code(agg: Aggregation, scale: int, lb: tuple[int, int, int] | None) -> str:
        if agg.kind == "lhist" and lb:
            lo, hi, st = lb
            n = (hi - lo) // st
            return (f"x < {lo}ULL ? 0 : (x >= {hi}ULL ? {n + 1} : "
                    f"(u32)((x - {lo}ULL) / {st}ULL) + 1)")
        return f"bpf_log2l(x / {scale}ULL)" if scale != 1 else "bpf_log2l(x)"

    @staticmethod
    def counter_update(mname: str, amount: str, key: str) -> list[str]:
        return [f"u64 z_{mname} = 0;",
                f"u64 *v_{mname} = {mname}.lookup_or_try_init(&{key}, &z_{mname});",
                f"if (v_{mname}) *v_{mname} += {amount}; else bpfrun_lost(LOST_MAP_FULL);"]

    @staticmethod
    def stats_update(mname: str, x: str, key: str) -> list[str]:
        v = f"st_{mname}"
        return [f"struct bpfrun_stats z_{mname} = {{}};",
                f"struct bpfrun_stats *{v} = {mname}.lookup_or_try_init(&{key}, &z_{mname});",
                f"if ({v}) bpfrun_stats_add({v}, (s64){x}); else bpfrun_lost(LOST_MAP_FULL);"]

    # -- probes, events, spans ---------------------------------------------------------
    def probe(self, probe: Probe) -> None:
        res = self.resolve(probe.candidates, probe.loc)
        if res is None:
            return
        if res.ref.kind == "interval":
            # A user-space tick: the runner snapshots this step's aggregations each period.
            if probe.where or probe.aggregate or probe.emit:
                self.error("an interval probe runs in user space: it takes no where, "
                           "aggregate or emit (it records the step's aggregations over time)",
                           probe.loc)
            unit, n = res.ref.parts
            self.prog.interval = int(n) * (1.0 if unit == "s" else 0.001)
            return
        requested = probe.candidates[0].text
        scope = self.scope(res)
        guard = self.guard(probe.where, scope, res.ref.canonical)
        fn = self.function_for(res, requested, self._skipped(probe.candidates, res))
        if guard is None:
            return  # the predicate folded to false: the probe can never contribute
        body = list(guard)
        if self.prog.stop_after:
            body.append("bpfrun_hit();")
        for agg in probe.aggregate:
            body += self.aggregation(agg, scope)
        if probe.emit:
            body += self.events(probe, res, scope)
        self.add_handler(fn, res, f"{res.ref.canonical} (runbook {probe.loc})", body)

    def _skipped(self, candidates: tuple[Template, ...], res: Resolved) -> list[str]:
        texts = [self.substitute(t) for t in candidates]
        idx = texts.index(res.ref.text) if res.ref.text in texts else 0
        if idx == 0:
            return []
        _, reasons = resolve_probe(texts[:idx], self.kernel)
        return reasons

    def events(self, probe: Probe, res: Resolved, scope: Scope) -> list[str]:
        index = len(self.prog.events)
        sname = f"bpfrun_ev{index}"
        comp = ExprCompiler(scope)
        body: list[str] = []
        fills: list[str] = []
        fields: list[KeyField] = []
        for i, e in enumerate(probe.emit):
            kf = self.key_field(comp, e, e.node, f"f{i}", "(*e)", fills)
            if kf is not None:
                fields.append(kf)
        if any(k.kind == "ustack" for k in fields):
            fills.append("e->tgid = bpf_get_current_pid_tgid() >> 32;")
        cfields = [self.c_field(k) for k in fields]
        cfields.append("u32 tgid;")
        self.prog.structs.append(f"struct {sname} {{ u32 probe; " + " ".join(cfields) + " };")
        if probe.limit:
            body += [f"if (!bpfrun_emit_allowed({index}, {probe.limit})) break;"]
        else:
            body += [f"bpfrun_emit_allowed({index}, 0);"]
        if self.prog.event_buffer == "ringbuf":
            body += [f"struct {sname} *e = events.ringbuf_reserve(sizeof(struct {sname}));",
                     "if (!e) { bpfrun_lost(LOST_EVENTS); break; }",
                     f"e->probe = {index};", "e->tgid = 0;"]
            body += [line.replace("(*e).", "e->") for line in fills]
            body.append("events.ringbuf_submit(e, 0);")
        else:  # perf buffer: the record is built on the stack; user space counts losses
            body += [f"struct {sname} e;", "__builtin_memset(&e, 0, sizeof(e));",
                     f"e.probe = {index};"]
            body += [line.replace("(*e).", "e.") for line in fills]
            body.append("events.perf_submit(ctx, &e, sizeof(e));")
        self.prog.events.append(EventPlan(index, res.ref.canonical,
                                          probe.id or f"events{index}", fields, probe.limit))
        return ["/* events */", "do {", *("    " + line for line in body), "} while (0);"]

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
                return CVal("str", direct=f"pv.{kf.name}", size=kf.size)
            if v.type == "stack":
                return CVal("stack", fill=lambda d, s: [f"{d} = pv.{kf.name};"], code=v.code)
            return CVal(v.type, code=f"pv.{kf.name}")

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
                self.error(f"span key {i + 1}: begin gives a {kb.vtype}, end a {ke.vtype}",
                           ek.loc)
            if kb:
                kb.size = max(kb.size, ke.size if ke else 0)
                kfields.append(self.c_field(kb))
        kstruct = f"bpfrun_{self.step.id}_span_key"
        vstruct = f"bpfrun_{self.step.id}_span_val"

        # End side first: it discovers which begin values are needed.
        end_guard = self.guard(span.end.where, escope, f"{eres.ref.canonical} (span end)")
        ebody = [f"struct {kstruct} key;", "__builtin_memset(&key, 0, sizeof(key));",
                 *kbody_e,
                 f"struct {vstruct} *pp = {pending}.lookup(&key);", "if (!pp) return 0;",
                 f"struct {vstruct} pv = *pp;", f"{pending}.delete(&key);",
                 "u64 duration = bpf_ktime_get_ns() - pv.ts;"]
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
        begin_guard = self.guard(span.begin.where, begin_scope,
                                 f"{bres.ref.canonical} (span begin)")
        vfields = ["u64 ts;"] + [self.c_field(kf) for kf, _, _ in begin_fields.values()]
        bbody = list(begin_guard or [])
        bbody += [f"struct {kstruct} key;", "__builtin_memset(&key, 0, sizeof(key));", *kbody_b,
                  f"struct {vstruct} val;", "__builtin_memset(&val, 0, sizeof(val));"]
        for kf, v, comp in begin_fields.values():
            dummy = Expr(kf.expr, Name(0, 1, kf.expr), span.begin.loc)
            self.store(v, dummy, dummy.node, kf.name, "val", bbody, comp)
            if v.type == "stack":
                self.prog.uses_stacks = True
        bbody += ["val.ts = bpf_ktime_get_ns();",
                  f"if ({pending}.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);"]
        self.prog.structs.append(f"struct {kstruct} {{ " + (" ".join(kfields) or "u32 _k;")
                                 + " };")
        self.prog.structs.append(f"struct {vstruct} {{ " + " ".join(vfields) + " };")
        size = span.max_pending or DEFAULT_MAX_PENDING
        self.prog.maps.append(f"BPF_HASH({pending}, struct {kstruct}, struct {vstruct}, {size});")
        efn = self.function_for(eres, span.end.candidates[0].text,
                                self._skipped(span.end.candidates, eres))
        self.add_handler(efn, eres, f"span end {eres.ref.canonical} (runbook {span.end.loc})",
                         ebody)
        if begin_guard is not None:
            bfn = self.function_for(bres, span.begin.candidates[0].text,
                                    self._skipped(span.begin.candidates, bres))
            self.add_handler(bfn, bres,
                             f"span begin {bres.ref.canonical} (runbook {span.begin.loc})", bbody)

    def lower(self) -> Program:
        if self.step.span is not None:
            try:
                self.span()
            except CompileError as e:
                self.error(str(e), self.step.span.loc, e.hint)
        for probe in self.step.probes:
            self.probe(probe)
        self.prog.structs[:0] = list(self.tp_structs.values())
        return self.prog


def lower_step(step: Step, consts: dict[str, Any], kernel: Kernel, substitute: Any,
               sources: dict[str, str], require_probes: bool = True) -> Program:
    """Step → Program. Raises ValidationError (all problems), MachineError (no usable probe,
    unless `require_probes` is off, as for `compile`), or cexpr.NullInput (an earlier step's
    value it needs is null)."""
    lowerer = Lowerer(step, consts, kernel, substitute, require_probes)
    prog = lowerer.lower()
    lowerer.diags.raise_if_any(sources)
    return prog


__all__ = ["AggPlan", "AttachPlan", "EventPlan", "KeyField", "LOST_KINDS", "Program",
           "ProbeCtx", "STACK_STORAGE", "lower_step"]
