"""Probe functions and handlers: one attached function per probe place, calling the inline
handler of each construct lowered there, and the tracepoint record structs they read.

A handler's prologue follows from what its code recorded as it was produced (the Uses of its
scope): the event caches it reads, the entry arguments it needs.
"""

from __future__ import annotations

from bpfrun.compile.cexpr import ENTRY_VAR
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import EVENT_CACHES, Uses
from bpfrun.compile.lower.context import StepContext, function_key
from bpfrun.compile.program import CTX_TYPES, AttachPlan, Function, Handler
from bpfrun.kernel.resolve import Resolved
from bpfrun.kernel.tracefs import TracepointFormat

ENTRY_ARGS_STRUCT = ("struct bpfrun_entry_args { u64 a0; u64 a1; u64 a2; u64 a3; u64 a4; "
                     "u64 a5; };")


def tp_struct(fmt: TracepointFormat) -> tuple[str, str]:
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


def attach_target(res: Resolved) -> tuple[str, ...]:
    """What to attach to: the probe's parts, with a uprobe's binary as resolved here."""
    return (res.target, *res.ref.parts[1:]) if res.target else res.ref.parts


def function_for(ctx: StepContext, res: Resolved) -> Function:
    """The probe function attached at `res`, made (and planned for attaching) on first use."""
    key = function_key(res)
    if key in ctx.functions:
        return ctx.functions[key]
    fn = Function(ctx.function_name(res), CTX_TYPES[res.ref.kind],
                  c_comment(res.ref.canonical), [], [])
    if res.ref.kind == "tracepoint" and res.ctx.fmt is not None:
        sname, decl = tp_struct(res.ctx.fmt)
        ctx.tp_structs.setdefault(sname, decl)
        fn.prologue.append(f"struct {sname} *args = ctx;")
    ctx.prog.attaches.append(AttachPlan(res.ref.kind, attach_target(res), fn.name,
                                        res.ref.canonical, res.requested, list(res.skipped)))
    ctx.prog.functions.append(fn)
    ctx.functions[key] = fn
    return fn


def add_handler(ctx: StepContext, fn: Function, res: Resolved, comment: str, body: list[str],
                uses: Uses) -> None:
    """A handler of `fn` running `body`, declaring what `uses` says the body reads."""
    ctx.task_cgroups |= uses.task_cgroup
    if uses.entry_args:
        stash = entry_stash(ctx, res)
        tid = uses.cached("pid_tgid")
        body = [f"u64 {ENTRY_VAR}_tid = {tid};",
                f"struct bpfrun_entry_args *{ENTRY_VAR}_p = {stash}.lookup(&{ENTRY_VAR}_tid);",
                f"if (!{ENTRY_VAR}_p) return 0;  /* attached mid-call: no entry seen */",
                f"struct bpfrun_entry_args {ENTRY_VAR} = *{ENTRY_VAR}_p;", *body]
    caches = [name for name in EVENT_CACHES if name in uses.caches]
    name = f"{fn.name}_h{len(fn.handlers)}"
    ctx.prog.handlers.append(Handler(
        name, fn.ctx_type, c_comment(comment),
        fn.prologue + [EVENT_CACHES[c].locals for c in caches] + body,
        caches, uses.string_compare, uses.user_mode_check))
    fn.handlers.append(name)


def entry_stash(ctx: StepContext, res: Resolved) -> str:
    """A map of entry arguments by thread, filled by an entry probe on the same function,
    for a return probe that reads entry.argN. Not deleted at return: the next call of
    the thread overwrites it (recursive calls of the function would mix up)."""
    key = function_key(res)
    if key in ctx.entry_stashes:
        return ctx.entry_stashes[key]
    kind = {"uretprobe": "uprobe", "kretprobe": "kprobe"}[res.ref.kind]
    fn = Function(ctx.fresh(f"bpfrun_{ctx.step.id}_entry"), "struct pt_regs",
                  c_comment(f"entry arguments of {res.ref.canonical}"), [], [])
    stash = ctx.entry_stashes[key] = fn.name + "_args"
    if len(ctx.entry_stashes) == 1:
        ctx.prog.structs.append(ENTRY_ARGS_STRUCT)
    ctx.prog.maps.append(f"BPF_HASH({stash}, u64, struct bpfrun_entry_args, 10240);")
    probe = f"{kind}:{':'.join(res.ref.parts)}"
    ctx.prog.attaches.append(AttachPlan(kind, attach_target(res), fn.name, probe, probe, []))
    ctx.prog.functions.append(fn)
    body = ["u64 tid = bpf_get_current_pid_tgid();", "struct bpfrun_entry_args a = {};"]
    body += [f"a.a{i} = PT_REGS_PARM{i + 1}(ctx);" for i in range(6)]
    body.append(f"{stash}.update(&tid, &a);")
    name = f"{fn.name}_h0"
    ctx.prog.handlers.append(Handler(name, fn.ctx_type, fn.comment, body))
    fn.handlers.append(name)
    return stash
