"""Lowering, shared part: the step's diagnostics, fresh names, probe resolution, probe
functions and handlers, predicates (guards) and how a value is stored into a key or record.
"""

from __future__ import annotations

import re
from typing import Any

from bpfrun.compile.cexpr import (
    ENTRY_VAR,
    USDT_READARG,
    CompileError,
    CVal,
    ExprCompiler,
    ProbeCtx,
    Scope,
)
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import EVENT_CACHES, PID_TGID
from bpfrun.compile.program import (
    CTX_TYPES,
    AttachPlan,
    Function,
    Handler,
    KeyField,
    Program,
    event_buffer,
)
from bpfrun.errors import Diagnostics, Loc, MachineError
from bpfrun.expr.nodes import Node, unparse
from bpfrun.frontend.model import Expr, Step, Template
from bpfrun.kernel.resolve import Resolved, parse_probe, resolve_probe
from bpfrun.kernel.tracefs import Kernel, TracepointFormat


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


class LowererBase:
    """What every part of lowering shares: diagnostics, names, probes, handlers, values."""

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
            return Resolved(ref, ProbeCtx(ref.kind, ref.text), None, False, ref.text)
        if not res.checked:
            self.prog.unchecked.append(f"probe {res.ref.text} (kernel not readable)")
        return res

    def function_for(self, res: Resolved) -> Function:
        key = (res.ref.canonical, res.target or "")
        if key in self.functions:
            return self.functions[key]
        fn = Function(self.fresh(f"bpfrun_{self.step.id}_probe"), CTX_TYPES[res.ref.kind],
                      c_comment(res.ref.canonical), [], [])
        if res.ref.kind == "tracepoint" and res.ctx.fmt is not None:
            sname, decl = _tp_struct(res.ctx.fmt)
            self.tp_structs.setdefault(sname, decl)
            fn.prologue.append(f"struct {sname} *args = ctx;")
        target = res.ref.parts
        if res.target:
            target = (res.target, *res.ref.parts[1:])
        self.prog.attaches.append(AttachPlan(res.ref.kind, target, fn.name, res.ref.canonical,
                                             res.requested, list(res.skipped)))
        self.prog.functions.append(fn)
        self.functions[key] = fn
        return fn

    def add_handler(self, fn: Function, res: Resolved, comment: str, body: list[str]) -> None:
        name = f"{fn.name}_h{len(fn.handlers)}"
        prologue = list(fn.prologue)
        if res.ref.kind == "usdt":
            body = [_usdt_reader(line, fn.name) for line in body]
        if any(f"{ENTRY_VAR}." in line for line in body):
            stash = self.entry_stash(res)
            body = [f"u64 {ENTRY_VAR}_tid = {PID_TGID};",
                    f"struct bpfrun_entry_args *{ENTRY_VAR}_p = {stash}.lookup(&{ENTRY_VAR}_tid);",
                    f"if (!{ENTRY_VAR}_p) return 0;  /* attached mid-call: no entry seen */",
                    f"struct bpfrun_entry_args {ENTRY_VAR} = *{ENTRY_VAR}_p;", *body]
        text = "\n".join(body)
        caches = [decl for use, (decl, _) in EVENT_CACHES.items() if use in text]
        self.prog.handlers.append(Handler(name, fn.ctx_type, c_comment(comment),
                                          prologue + caches + body))
        fn.handlers.append(name)

    def entry_stash(self, res: Resolved) -> str:
        """A map of entry arguments by thread, filled by an entry probe on the same function,
        for a return probe that reads entry.argN. Not deleted at return: the next call of
        the thread overwrites it (recursive calls of the function would mix up)."""
        key = ("entry", res.ref.canonical, res.target or "")
        if key in self.functions:
            return self.functions[key].name + "_args"
        kind = {"uretprobe": "uprobe", "kretprobe": "kprobe"}[res.ref.kind]
        fn = Function(self.fresh(f"bpfrun_{self.step.id}_entry"), "struct pt_regs",
                      c_comment(f"entry arguments of {res.ref.canonical}"), [], [])
        self.functions[key] = fn
        stash = fn.name + "_args"
        if not any(s.startswith("struct bpfrun_entry_args ") for s in self.prog.structs):
            self.prog.structs.append("struct bpfrun_entry_args { u64 a0; u64 a1; u64 a2; "
                                     "u64 a3; u64 a4; u64 a5; };")
        self.prog.maps.append(f"BPF_HASH({stash}, u64, struct bpfrun_entry_args, 10240);")
        target = (res.target, *res.ref.parts[1:]) if res.target else res.ref.parts
        probe = f"{kind}:{':'.join(res.ref.parts)}"
        self.prog.attaches.append(AttachPlan(kind, target, fn.name, probe, probe, []))
        self.prog.functions.append(fn)
        body = ["u64 tid = bpf_get_current_pid_tgid();", "struct bpfrun_entry_args a = {};"]
        body += [f"a.a{i} = PT_REGS_PARM{i + 1}(ctx);" for i in range(6)]
        body.append(f"{stash}.update(&tid, &a);")
        name = f"{fn.name}_h0"
        self.prog.handlers.append(Handler(name, fn.ctx_type, fn.comment, body))
        fn.handlers.append(name)
        return stash

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
            if src and v.local:
                out += [v.ready] if v.ready else []
                out.append(f"__builtin_memcpy(&{dest}.{name}, {src}, {v.size});")
            elif src:
                out.append(f"bpf_probe_read_kernel(&{dest}.{name}, {v.size}, {src});")
            else:
                assert v.fill is not None
                out.extend(v.fill(f"{dest}.{name}", v.size))
            return KeyField(name, text, "str", "str", v.size)
        if v.type == "addr":  # ntop(): the address bytes, shown as an IP address
            assert v.fill is not None
            out.extend(v.fill(f"{dest}.{name}", v.size))
            return KeyField(name, text, "addr", "addr", v.size)
        if v.type == "stack":
            self.prog.uses_stacks = True
            assert v.fill is not None
            out.extend(v.fill(f"{dest}.{name}", 8))
            is_user = v.code == "user"
            self.prog.user_stacks |= is_user
            kf = KeyField(name, text, "ustack" if is_user else "stack", "stack", 8)
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
                        decode=v.decode, signed=v.signed)

    @staticmethod
    def c_field(k: KeyField) -> str:
        if k.kind == "str":
            return f"char {k.name}[{k.size}];"
        if k.kind == "addr":
            return f"u8 {k.name}[{k.size}];"
        if k.caller:
            return f"u64 {k.name}; u64 {k.caller};"
        return f"u64 {k.name};"

