"""Kernel-side expressions: type-check an expression and turn it into BCC C.

One visitor (`visit_<Node>`) gives each expression a CVal: its type, C code or a way to fill a
buffer (strings, stacks), or a constant when params and earlier steps' values fold it. No raw C
ever comes from the runbook: names map to fixed C fragments, constants become escaped literals.
Values and types live in cvalue, kernel functions (str, ntop, ...) in cfuncs; their public
names are re-exported here.

Every independent problem of an expression is reported, not only the first: an operand that
fails is recorded and stands in as FAILED (a value of any type), and an error of an operation
on it is its consequence, not a problem of its own, so it is dropped. `value` and `predicate`
raise them all at once (CompileErrors) when the expression is done.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from bpfrun.compile.cfuncs import call
from bpfrun.compile.cstr import byte_chain, c_comment, c_string_literal
from bpfrun.compile.cvalue import (
    BUILTIN_NAMES,
    CMP_OPS,
    COMM_LEN,
    ENTRY_VAR,
    INT_BUILTINS,
    S64_MIN,
    STACK_NAMES,
    STR_MAX,
    U64_MAX,
    USER_MODE_SAMPLES,
    CompileError,
    CVal,
    NullInput,
    ProbeCtx,
    Scope,
    Unbound,
    a_type,
    arith_type,
    comparable,
    compare_hint,
    const_c,
    const_type,
    describe,
    folded,
    num,
    py_arith,
    py_cmp,
)
from bpfrun.compile.program import STACK_NONE
from bpfrun.expr.nodes import (
    Attr,
    Binary,
    Call,
    In,
    Index,
    Literal,
    Name,
    Node,
    Unary,
    dotted,
    unparse,
)
from bpfrun.units import Duration, Size

# What other modules import from here, wherever it is defined.
__all__ = ["ENTRY_VAR", "CVal", "CompileError", "CompileErrors", "ExprCompiler", "NullInput",
           "ProbeCtx", "Scope", "Unbound", "a_type", "const_c", "const_type", "problems_of"]


class CompileErrors(CompileError):
    """Several independent problems of one expression, in the order met (left to right);
    as a CompileError it is the first of them."""

    def __init__(self, errors: list[CompileError]) -> None:
        super().__init__(str(errors[0]), errors[0].node, errors[0].hint)
        self.errors = errors


def problems_of(e: CompileError) -> list[CompileError]:
    """The problems a CompileError stands for: itself, or each of a CompileErrors."""
    return list(e.errors) if isinstance(e, CompileErrors) else [e]


# What a failed operand gives: any type, so the operation using it raises nothing new.
FAILED = CVal("any", code="0 /* failed */")


class ExprCompiler:
    """Compiles expressions of one scope; collects statements that must run before them."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.pre: list[str] = []
        self.buffers: dict[str, str] = {}  # CVal.memo → buffer already filled by `pre`
        self.readied: set[str] = set()  # CVal.ready statements already in `pre`
        self.sets: dict[tuple[str, frozenset[int]], str] = {}  # `x in [numbers]` → its local
        self.errors: list[CompileError] = []  # of the expression being compiled

    def take_pre(self) -> list[str]:
        """The statements gathered so far, which the caller places; `pre` starts afresh."""
        pre, self.pre = self.pre, []
        self.readied.clear()
        return pre

    # -- entry points -------------------------------------------------------------------
    def value(self, node: Node) -> CVal:
        """The CVal of a whole expression; raises every problem of it (CompileErrors)."""
        return self._whole(node, self.operand)

    def predicate(self, node: Node) -> CVal:
        """value() of a condition: true or false."""
        return self._whole(node, self._condition)

    def _whole(self, node: Node, compile_: Callable[[Node], CVal]) -> CVal:
        outer, self.errors = self.errors, []
        try:
            v = compile_(node)
            errors = self.errors
        finally:
            self.errors = outer
        errors.sort(key=lambda e: e.node.offset)  # as the reader meets them, left to right
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise CompileErrors(errors)
        return v

    def operand(self, node: Node) -> CVal:
        """The CVal of a part of the expression; FAILED after a problem, which is recorded.
        A problem met while an operand of `node` had failed already is not recorded: it
        is a consequence (`nosuch > 1` is not also a comparison of a value with 1)."""
        before = len(self.errors)
        try:
            method: Callable[[Node], CVal] = getattr(self, f"visit_{type(node).__name__}")
            v = method(node)
        except CompileError as e:
            if len(self.errors) == before:
                self.errors += problems_of(e)
            return FAILED
        return FAILED if len(self.errors) > before else v

    def _condition(self, node: Node) -> CVal:
        v = self.operand(node)
        if v.type not in ("bool", "int", "any"):
            self.errors.append(CompileError(
                f"a condition must be true or false, not {a_type(v.type)}", node))
            return FAILED
        return v

    def string_buffer(self, v: CVal) -> str:
        """A char-array lvalue holding v (reading it into a local buffer when needed)."""
        if v.direct:
            if v.ready and v.ready not in self.readied:
                self.readied.add(v.ready)
                self.pre.append(v.ready)
            return v.direct
        if v.memo is not None and v.memo in self.buffers:
            return self.buffers[v.memo]
        assert v.fill is not None
        buf = self.scope.fresh("s")
        self.pre.append(f"char {buf}[{v.size}] = {{}};")
        self.pre.extend(v.fill(buf, v.size))
        if v.memo is not None:
            self.buffers[v.memo] = buf
        return buf

    # -- leaves ------------------------------------------------------------------------
    def visit_Literal(self, node: Literal) -> CVal:
        if node.kind == "null":
            raise CompileError("null cannot be used in a kernel expression", node)
        value = {"duration": Duration, "size": Size}.get(node.kind, lambda v: v)(node.value)
        return self._const(value, node)

    def _const(self, value: Any, node: Node) -> CVal:
        if value is None:
            raise NullInput(dotted(node) or "value")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            t = const_type(value)
        except TypeError:
            what = dotted(node) or "this value"
            raise CompileError(f"{what} is {describe(value)}, which kernel code cannot use",
                               node, "kernel expressions take numbers, strings, durations "
                               "and sizes: use one field or stat of it") from None
        if t == "int" and not S64_MIN <= value <= U64_MAX:
            raise CompileError(f"{value} does not fit in 64 bits", node)
        if t == "str":
            return CVal("str", const=value, size=len(value.encode()) + 1)
        return CVal(t, code=const_c(value), const=value)

    def visit_Name(self, node: Name) -> CVal:
        n = node.name
        if n in INT_BUILTINS:
            code, cache = INT_BUILTINS[n]
            if cache is not None:
                self.scope.uses.cached(cache)
            return CVal("int", code=code)
        if n == "comm":
            ready = self.scope.uses.cached("comm") + ";"
            return CVal("str", size=COMM_LEN, direct="bpfrun_comm", ready=ready, local=True)
        if n in STACK_NAMES:
            return self._stack(n)
        if n == "duration":
            if self.scope.duration is None:
                raise CompileError("`duration` exists only on the end side of a span", node)
            return CVal("duration", code=self.scope.duration)
        if n == "ppid":
            raise CompileError(
                "ppid cannot be read in the kernel here: it needs task_struct offsets that "
                "BCC cannot know without matching kernel headers", node,
                "use tracepoint:sched:sched_process_fork (args.parent_pid) instead")
        if n in ("retval",):
            if self.scope.probe.kind not in ("kretprobe", "uretprobe"):
                raise CompileError("retval exists only at kretprobe/uretprobe probes", node)
            return CVal("int", code="PT_REGS_RC(ctx)", signed=True)
        if n.startswith("arg") and n[3:].isdigit():
            return self._argn(node, int(n[3:]))
        if n in ("args", "params", "steps", "begin"):
            raise CompileError(f"`{n}` needs a field: write {n}.<name>", node)
        raise CompileError(f"unknown name '{n}'", node,
                           "names: " + ", ".join(BUILTIN_NAMES) + ", args.<field>, params.<p>")

    def _stack(self, name: str) -> CVal:
        flags = "BPF_F_USER_STACK" if name == "ustack" else "0"
        get = f"bpfrun_stack_id(ctx, {flags})"
        if (name == "kstack" and self.scope.probe.kind in USER_MODE_SAMPLES
                and self.scope.user_mode_check):
            # A sample taken in user mode has no kernel stack: not walking one saves
            # ~0.15 us per sample (measured paired with profile-bpfcc: bench/RESULTS.md).
            self.scope.uses.user_mode_check = True
            get = f"BPFRUN_IN_USER_MODE(ctx) ? {STACK_NONE} /* none */ : {get}"
        return CVal("stack", code="user" if name == "ustack" else "kernel",
                    fill=lambda d, s: [f"{d} = {get};"])

    def _argn(self, node: Node, i: int) -> CVal:
        kind = self.scope.probe.kind
        if kind == "rawtracepoint":
            return CVal("int", code=f"ctx->args[{i}]")
        if kind == "usdt" and i <= 11:
            # USDT arguments live wherever the compiler put them: BCC generates a reader per
            # attached function (and rewrites bpf_usdt_readarg() only inside that function).
            var = self.scope.fresh("usdt_arg")
            reader = f"_bpf_readarg_{self.scope.function()}_{i + 1}"
            self.pre += [f"u64 {var} = 0;", f"{reader}(ctx, &{var}, sizeof({var}));"]
            return CVal("int", code=var)
        if kind in ("kprobe", "uprobe", "kretprobe", "uretprobe") and i <= 5:
            return CVal("int", code=f"PT_REGS_PARM{i + 1}(ctx)")
        if kind == "tracepoint":
            raise CompileError(f"tracepoints name their fields: write args.<field>, not arg{i}",
                               node, self.fields_hint())
        raise CompileError(f"arg{i} is not available at a {kind} probe", node)

    def fields_hint(self, near: str | None = None) -> str | None:
        fmt = self.scope.probe.fmt
        if fmt is None:
            return None
        close = difflib.get_close_matches(near, [f.name for f in fmt.fields], n=1) if near else []
        # __syscall_nr and friends are bookkeeping, not what the user was looking for.
        names = ", ".join(f.name for f in fmt.fields if not f.name.startswith("__"))
        return ((f"did you mean '{close[0]}'? " if close else "")
                + f"fields of {fmt.probe}: {names or '(none)'}")

    # -- dotted names ------------------------------------------------------------------
    def visit_Attr(self, node: Attr) -> CVal:
        path = dotted(node)
        if path is None:
            raise CompileError("only names can have fields here", node)
        head, _, rest = path.partition(".")
        if head == "args":
            return self._tp_field(node, rest)
        if head == "entry":
            # At a return probe: the function's arguments, stashed by an entry probe that
            # lowering adds on the same function (keyed by thread).
            kind = self.scope.probe.kind
            if kind not in ("uretprobe", "kretprobe"):
                raise CompileError("`entry.argN` exists only at uretprobe/kretprobe probes",
                                   node, "at an entry probe, write argN")
            if not (rest.startswith("arg") and rest[3:].isdigit() and int(rest[3:]) <= 5):
                raise CompileError(f"entry.{rest}: write entry.arg0 … entry.arg5", node)
            self.scope.uses.entry_args = True
            return CVal("int", code=f"{ENTRY_VAR}.a{rest[3:]}")
        if head == "begin":
            if self.scope.begin_ref is None:
                raise CompileError("`begin.` values exist only on the end side of a span", node)
            return self.scope.begin_ref(node)
        if head == "params":
            params = self.scope.consts.get("params", {})
            if rest not in params:
                raise CompileError(f"unknown param '{rest}'", node,
                                   "params: " + (", ".join(params) or "none"))
            return self._const(params[rest], node)
        if head == "steps":
            sid, _, name = rest.partition(".")
            steps = self.scope.consts.get("steps", {})
            if sid not in steps:
                raise CompileError(f"'{sid}' is not an earlier step", node)
            if name not in steps[sid]:
                known = ", ".join(steps[sid]) or "none"
                raise CompileError(f"step '{sid}' has no capture or threshold '{name}'", node,
                                   f"known: {known}")
            return self._const(steps[sid][name], node)
        raise CompileError(f"unknown name '{path}'", node)

    def _tp_field(self, node: Node, name: str) -> CVal:
        probe = self.scope.probe
        if probe.kind != "tracepoint":
            raise CompileError(f"args.{name}: only tracepoints have named fields "
                               f"({probe.name} gives arg0..arg5)", node)
        fmt = probe.fmt
        if fmt is None:  # kernel not readable: the field's type is unknown until run time
            return CVal("any", code=f"args->{name}")
        f = fmt.field(name)
        if f is None:
            raise CompileError(f"tracepoint:{fmt.category}:{fmt.event} has no field '{name}'",
                               node, self.fields_hint(name))
        if f.kind == "int":
            return CVal("int", code=f"args->{f.name}", signed=f.signed)
        if f.kind in ("ptr", "strptr"):
            return CVal("ptr", code=f"args->{f.name}")
        if f.kind == "chararray":
            return CVal("str", direct=f"args->{f.name}", size=f.array_len or f.size,
                        fill=lambda d, s: [f"bpf_probe_read_kernel(&{d}, {s}, args->{f.name});"])
        if f.kind == "data_loc_str":
            loc = f"(void *)((char *)args + (args->{f.name} & 0xFFFF))"
            return CVal("str", size=STR_MAX, memo=loc,
                        fill=lambda d, s: [f"bpf_probe_read_kernel_str(&{d}, {s}, {loc});"])
        raise CompileError(f"field '{name}' ({f.ctype}) cannot be used in expressions yet", node)

    # -- calls and operators -----------------------------------------------------------
    def visit_Call(self, node: Call) -> CVal:
        return call(self, node)

    def visit_Unary(self, node: Unary) -> CVal:
        v = self.operand(node.operand)
        if node.op == "!":
            if v.type not in ("bool", "int", "ptr", "any"):
                raise CompileError(f"! needs a condition, not {a_type(v.type)}", node)
            if folded(v):
                return self._const(not v.const, node)
            return CVal("bool", code=f"(!{v.code})")
        if v.type not in ("int", "duration", "size", "any"):
            raise CompileError(f"cannot negate {a_type(v.type)}", node)
        if v.is_const and not isinstance(v.const, Unbound):
            c = v.const
            neg = type(c)(-getattr(c, "ns", getattr(c, "bytes", c))) if v.type != "int" else -c
            return self._const(neg, node)
        return CVal(v.type, code=f"(-(s64){v.code})", signed=True)

    def visit_In(self, node: In) -> CVal:
        # The item is read once: `str(args.filename) in [...]` must not take one 128-byte
        # buffer per option from the 512-byte BPF stack.
        item = self.operand(node.item)
        if item.type == "str" and not item.is_const:
            item = CVal("str", direct=self.string_buffer(item), size=item.size)
        acc = self._const(False, node)
        numbers: list[tuple[int, str]] = []
        for option in node.options:
            opt = self.operand(option)
            if item is FAILED or opt is FAILED:
                continue
            try:  # each option on its own: `pid in [1, "a", "b"]` is two problems
                eq = self._compare(Binary(node.offset, node.length, "==", node.item, option),
                                   item, opt)
            except CompileError as e:  # at the option that does not fit
                self.errors.append(CompileError(str(e), option, e.hint))
                continue
            acc = self._combine(node, "||", acc, eq)
            if folded(opt) and type(opt.const) is int and 0 <= opt.const < 1 << 63:
                numbers.append((opt.const, opt.code[opt.code.find("/*"):] if "/*" in opt.code
                                else ""))
        if folded(acc) or item.type == "str" or len(numbers) < len(node.options) \
                or len(numbers) < SWITCH_MIN:
            return acc
        test = (str(item.code), frozenset(n for n, _ in numbers))
        var = self.sets.get(test)
        if var is None:  # the same test again (another member's where): computed once
            var = self.sets[test] = self.scope.fresh("in")
            self.pre += [f"int {var} = 0;", in_switch(var, item.code, numbers)]
        return CVal("bool", code=var)

    def visit_Index(self, node: Index) -> CVal:
        raise CompileError("indexing is not available in kernel expressions", node)

    def visit_Binary(self, node: Binary) -> CVal:
        if node.op in ("&&", "||"):
            return self._logic(node)
        left, right = self.operand(node.left), self.operand(node.right)
        if node.op in CMP_OPS:
            return self._compare(node, left, right)
        return self._arith(node, left, right)

    def _logic(self, node: Binary) -> CVal:
        left = self._condition(node.left)
        if folded(left) and bool(left.const) != (node.op == "&&"):
            return self._const(bool(left.const), node)  # false && x, true || x
        return self._combine(node, node.op, left, self._condition(node.right))

    def _combine(self, node: Node, op: str, left: CVal, right: CVal) -> CVal:
        """left && right, left || right, folding what constants decide."""
        is_and = op == "&&"
        for a, b in ((left, right), (right, left)):
            if folded(a):
                return b if bool(a.const) == is_and else self._const(bool(a.const), node)
        return CVal("bool", code=f"({left.code} {op} {right.code})")

    def _compare(self, node: Binary, left: CVal, right: CVal) -> CVal:
        lt, rt = left.type, right.type
        if "any" not in (lt, rt) and not comparable(lt, rt, left, right):
            raise CompileError(f"cannot compare {a_type(lt)} with {a_type(rt)}", node,
                               compare_hint(lt, rt))
        if lt == "str" or rt == "str":
            return self._compare_str(node, left, right)
        if left.is_const and right.is_const and "any" not in (lt, rt):
            return self._const(py_cmp(node.op, num(left.const), num(right.const)), node)
        if node.op in ("==", "!=") and "stack" in (lt, rt):
            raise CompileError("stacks can only be aggregation keys", node)
        signed = any(c.is_const and not isinstance(c.const, Unbound) and num(c.const) < 0
                     for c in (left, right))
        cast = "(s64)" if signed else ""
        return CVal("bool", code=f"({cast}{left.code} {node.op} {cast}{right.code})")

    def _compare_str(self, node: Binary, left: CVal, right: CVal) -> CVal:
        if node.op not in ("==", "!="):
            raise CompileError("strings compare only with == and !=", node)
        neg = "!" if node.op == "!=" else ""
        if left.is_const and right.is_const:
            if isinstance(left.const, Unbound) or isinstance(right.const, Unbound):
                return CVal("bool", code="0 /* compared at run time */")
            return self._const((left.const == right.const) != (node.op == "!="), node)
        if "any" in (left.type, right.type):  # tracefs unreadable: the field's type is unknown
            return CVal("bool", code="1 /* not checked: tracepoint formats unreadable */")
        if left.is_const or right.is_const:
            var, lit = (right, left.const) if left.is_const else (left, right.const)
            if isinstance(lit, Unbound):
                return CVal("bool", code=f"{neg}0 /* {lit.name}: bound at run time */")
            return CVal("bool", code=f"{neg}{self.str_eq(var, lit)}")
        a, b = self.string_buffer(left), self.string_buffer(right)
        n = min(left.size, right.size)
        self.scope.uses.string_compare = True
        return CVal("bool", code=f"{neg}bpfrun_streq({a}, {b}, {n})")

    def str_eq(self, var: CVal, literal: str, prefix_only: bool = False) -> str:
        """Unrolled byte comparison against a constant: no loop for the verifier to doubt."""
        buf = self.string_buffer(var)
        data = literal.encode()
        if len(data) >= var.size:  # e.g. a 20-char name vs the 16-byte comm: match its prefix
            data, prefix_only = data[: var.size - 1], True
        checks = [f"((u8){buf}[{i}] == {b})" for i, b in enumerate(data)]
        if not prefix_only:
            checks.append(f"({buf}[{len(data)}] == 0)")
        lit = c_comment(c_string_literal(literal), 80)  # a label for readers of the C
        return f"(/* {lit} */ " + byte_chain(checks or ["1"]) + ")"

    def _arith(self, node: Binary, left: CVal, right: CVal) -> CVal:
        lt, rt = left.type, right.type
        t = arith_type(node.op, lt, rt)
        if t is None:
            raise CompileError(f"cannot use {node.op} on {a_type(lt)} and {a_type(rt)}", node)
        if node.op in ("<<", ">>") and folded(right) and not 0 <= num(right.const) < 64:
            raise CompileError("a shift must be by 0 to 63 bits", node)
        if (left.is_const and right.is_const and "any" not in (lt, rt)):
            a, b = num(left.const), num(right.const)
            if node.op in ("/", "%") and b == 0:
                raise CompileError("division by zero", node)
            value = py_arith(node.op, a, b)
            if not S64_MIN <= value <= U64_MAX:
                raise CompileError(f"{unparse(node)} does not fit in 64 bits", node)
            return self._const({"duration": Duration, "size": Size}.get(t, int)(value), node)
        if node.op in ("/", "%") and folded(right) and num(right.const) == 0:
            raise CompileError("division by zero", node)
        return CVal(t, code=f"({left.code} {node.op} {right.code})",
                    signed=left.signed or right.signed)


SWITCH_MIN = 4  # options from which `x in [...]` of numbers becomes a switch


def in_switch(var: str, item: str, numbers: list[tuple[int, str]]) -> str:
    """`item in [numbers]` as a switch statement setting `var` (0 before it): clang lowers
    it to bit tests and a binary search (a few instructions) where a chain of == would test
    every option in turn — the syscalls runbook's 32 waiting calls, on every system call.
    Equal to the chain: non-negative constants compare the same with the item as u64 as
    with ==. Each case keeps the option's comment (a syscall's name)."""
    cases = " ".join(f"case {n}ULL:{' ' + note if note else ''}"
                     for n, note in sorted(dict(reversed(numbers)).items()))
    return f"switch ((u64)({item})) {{ {cases} {var} = 1; }}"
