"""How a value is stored into a field of a map key, span record or event record, and how
that field is declared and read back (its KeyField).

`into` is the C that names the record's fields: "k." for a key on the stack, "e->" for an
event reserved in the ring buffer. Strings are copied or read into char arrays, stacks become
stack ids (stacks.py), numbers are assigned.
"""

from __future__ import annotations

from bpfrun.compile.cexpr import CompileError, CVal, ExprCompiler
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.stacks import store_stack
from bpfrun.compile.program import KeyField
from bpfrun.expr.nodes import Node, unparse
from bpfrun.frontend.model import Expr

NUMBER_TYPES = ("int", "bool", "duration", "size", "any")


def key_field(ctx: StepContext, comp: ExprCompiler, expr: Expr, node: Node, name: str,
              into: str, out: list[str]) -> KeyField | None:
    """Compile `node` (of `expr`) and store it into field `name`; None after an error."""
    try:
        v = comp.value(node)
    except CompileError as e:
        ctx.compile_error(e, expr)
        return None
    return store(ctx, comp, v, expr, node, name, into, out)


def store(ctx: StepContext, comp: ExprCompiler, v: CVal, expr: Expr, node: Node, name: str,
          into: str, out: list[str]) -> KeyField | None:
    """Write value v into field `into + name`; describe that field."""
    text = unparse(node) if node is not expr.node else expr.text
    dest = f"{into}{name}"
    if v.type == "str":
        if v.is_const:
            ctx.error("a constant string is not a useful key or field", expr.at(node))
            return None
        out.extend(comp.take_pre())
        store_string(v, dest, out)
        return KeyField(name, text, "str", "str", v.size)
    if v.type == "addr":  # ntop(): the address bytes, shown as an IP address
        assert v.fill is not None
        out.extend(v.fill(dest, v.size))
        return KeyField(name, text, "addr", "addr", v.size)
    if v.type == "stack":
        return store_stack(ctx, comp.scope, v, KeyField(name, text, "stack", "stack", 8),
                           into, out)
    if v.type == "ptr":
        v = CVal("int", code=v.code)
    if v.type not in NUMBER_TYPES:
        ctx.error(f"a {v.type} cannot be stored here", expr.at(node))
        return None
    out.extend(comp.take_pre())
    out.append(f"{dest} = {v.code};")
    return KeyField(name, text, "int", "int" if v.type == "any" else v.type,
                    decode=v.decode, signed=v.signed)


def store_string(v: CVal, dest: str, out: list[str]) -> None:
    """A string into the char array `dest`: copied from the program's own memory, read
    from the kernel's, or filled by the function that produced it."""
    if v.direct and v.local:
        out += [v.ready] if v.ready else []
        out.append(f"__builtin_memcpy(&{dest}, {v.direct}, {v.size});")
    elif v.direct:
        out.append(f"bpf_probe_read_kernel(&{dest}, {v.size}, {v.direct});")
    else:
        assert v.fill is not None
        out.extend(v.fill(dest, v.size))


def c_field(k: KeyField) -> str:
    """The declaration of a record field that holds `k`."""
    if k.kind == "str":
        return f"char {k.name}[{k.size}];"
    if k.kind == "addr":
        return f"u8 {k.name}[{k.size}];"
    if k.caller:
        return f"u64 {k.name}; u64 {k.caller};"
    return f"u64 {k.name};"
