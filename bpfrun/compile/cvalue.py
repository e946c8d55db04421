"""Kernel-side values: the types an expression can have and what compiling one gives (CVal).

The shared vocabulary of cexpr, cfuncs and lowering: the probe and scope an expression is
compiled at, the errors it can raise, the fixed C names and builtins expressions map to,
constants (params, earlier steps' values) as C literals, and the type rules of the operators:
what compares with what, what arithmetic gives, how constants fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bpfrun.expr.evaluate import Fields
from bpfrun.expr.nodes import Node
from bpfrun.kernel.resolve import ProbeCtx
from bpfrun.units import Duration, Size

STR_MAX = 128  # bytes read by str() of a pointer: bounded, verifier-friendly
COMM_LEN = 16
NOTCONST = object()
ENTRY_VAR = "bpfrun_entry"  # a return probe's copy of its function's entry arguments

# Types: int bool str duration size ptr stack any ("any" = a value bound only at run time).
ARITH_OPS = {"*", "/", "%", "+", "-", "<<", ">>", "&", "^", "|"}
CMP_OPS = {"<", "<=", ">", ">=", "==", "!="}
STACK_NAMES = ("kstack", "ustack")
# Probes whose samples can interrupt user mode, where there is no kernel stack to walk.
USER_MODE_SAMPLES = ("profile", "software")


@dataclass(frozen=True)
class EventCache:
    """A value of the current task that one event reads at most once, however many
    predicates and keys use it (bench/: this took the syscalls step's exit program from 118
    to 96 ns). A handler that uses it declares the locals; the first use calls the helper,
    and clang folds the flag away where uses follow each other."""

    use: str  # what code writes to read the value
    locals: str  # declared by each handler that reads it
    define: str  # the macro, once per program


EVENT_CACHES = {  # in the order handlers declare them and the program defines them
    "pid_tgid": EventCache(
        "BPFRUN_PID_TGID()", "u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;",
        "#define BPFRUN_PID_TGID() (bpfrun_have_pid_tgid ? bpfrun_pid_tgid : "
        "(bpfrun_have_pid_tgid = 1, bpfrun_pid_tgid = bpf_get_current_pid_tgid()))"),
    "uid_gid": EventCache(
        "BPFRUN_UID_GID()", "u64 bpfrun_uid_gid = 0; int bpfrun_have_uid_gid = 0;",
        "#define BPFRUN_UID_GID() (bpfrun_have_uid_gid ? bpfrun_uid_gid : "
        "(bpfrun_have_uid_gid = 1, bpfrun_uid_gid = bpf_get_current_uid_gid()))"),
    "comm": EventCache(
        "BPFRUN_READ_COMM()", "char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;",
        "#define BPFRUN_READ_COMM() do { if (!bpfrun_have_comm) { "
        "bpf_get_current_comm(&bpfrun_comm, sizeof(bpfrun_comm)); bpfrun_have_comm = 1; } "
        "} while (0)"),
}
# name → (C, the event cache it reads or None)
INT_BUILTINS: dict[str, tuple[str, str | None]] = {
    "pid": ("(BPFRUN_PID_TGID() >> 32)", "pid_tgid"),
    "tid": ("((u32)BPFRUN_PID_TGID())", "pid_tgid"),
    "uid": ("((u32)BPFRUN_UID_GID())", "uid_gid"),
    "gid": ("(BPFRUN_UID_GID() >> 32)", "uid_gid"),
    "cpu": ("bpf_get_smp_processor_id()", None),
    "nsecs": ("bpf_ktime_get_ns()", None),
    "cgroup": ("bpf_get_current_cgroup_id()", None),
}
BUILTIN_NAMES = (*INT_BUILTINS, "comm", "kstack", "ustack", "ppid")
_TYPE_NAMES = {"int": "number", "str": "string", "ptr": "pointer", "any": "value"}
S64_MIN, U64_MAX = -(1 << 63), (1 << 64) - 1


def a_type(t: str) -> str:
    """A type as messages name it, with its article: 'a number', 'a string', 'a pointer'."""
    name = _TYPE_NAMES.get(t, t)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


class CompileError(Exception):
    """A problem at one node of an expression; the caller turns it into a Diagnostic."""

    def __init__(self, message: str, node: Node, hint: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.hint = hint


class NullInput(Exception):
    """A value from an earlier step that the expression needs is null: skip the step."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is null (the earlier step found no data)")
        self.name = name


@dataclass
class CVal:
    type: str
    code: str = ""
    const: Any = NOTCONST
    fill: Callable[[str, int], list[str]] | None = None  # str/stack: write into dest[size]
    direct: str | None = None  # str: char-array lvalue readable in place
    ready: str | None = None  # str: statement that must run before `direct` is read
    local: bool = False  # str: `direct` is the program's own memory (copy, don't probe-read)
    size: int = 0  # str: bytes of the buffer
    decode: str | None = None  # int shown by name in user space ("syscall")
    memo: str | None = None  # str: reads that give the same bytes share one buffer
    signed: bool = False  # int: shown as a signed 64-bit number (args.ret = -2, not 2**64-2)
    copied: bool = False  # stack: an id taken earlier (at a span's begin), not here
    at_return: bool = False  # stack: taken at a function's return (top frame: return address)

    @property
    def is_const(self) -> bool:
        return self.const is not NOTCONST


@dataclass
class Uses:
    """What the code of one handler needs around it, recorded as that code is produced."""

    caches: set[str] = field(default_factory=set)  # EVENT_CACHES read
    string_compare: bool = False  # bpfrun_streq()
    user_mode_check: bool = False  # BPFRUN_IN_USER_MODE()
    entry_args: bool = False  # entry.argN: the stash of entry arguments is read first
    task_cgroup: bool = False  # task_cgroup(): the step records tasks' cgroups (lower/taskcgroup)

    def cached(self, name: str) -> str:
        """The C that reads event cache `name`, noting that the handler reads it."""
        self.caches.add(name)
        return EVENT_CACHES[name].use


@dataclass
class Scope:
    """Where one handler's expressions are compiled: its probe, constants, and what the
    kernel and the probe function it runs in offer."""

    probe: ProbeCtx
    consts: dict[str, Any]  # {"params": {...}, "steps": {id: {name: value}}}
    duration: str | None = None  # C name of the span duration (end side only)
    begin_ref: Callable[[Node], CVal] | None = None  # resolves begin.<x> on the end side
    fresh: Callable[[str], str] = field(default=lambda p: p)
    # The name of the probe function the handler runs in (USDT argument readers are per
    # function), asked for only when needed: asking reserves the name.
    function: Callable[[], str] = field(default=lambda: "")
    user_mode_check: bool = True  # samples can tell user mode (Features.user_mode_check)
    arch: str = "x86_64"  # the kernel's `uname -m` (Features.arch): syscall numbers differ
    uses: Uses = field(default_factory=Uses)


def const_type(value: Any) -> str:
    """The expression type of a constant; TypeError for values kernel code cannot hold."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, Duration):
        return "duration"
    if isinstance(value, Size):
        return "size"
    if isinstance(value, Unbound):
        return "any"
    raise TypeError(f"value {value!r} cannot be used in a kernel expression")


@dataclass(frozen=True)
class Unbound:
    """A value only known at run time (an earlier step's capture) when compiling ahead."""

    name: str


def const_c(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Duration):
        return f"{value.ns}ULL"
    if isinstance(value, Size):
        return f"{value.bytes}ULL"
    if isinstance(value, int):
        # Signed unless too big for s64: `args.ret < 0` must compare signed, and an unsigned
        # operand still makes the comparison unsigned where that is what the field is.
        if value == S64_MIN:
            return f"({value + 1}LL - 1)"
        return f"{value}LL" if value <= U64_MAX >> 1 else f"{value}ULL"
    if isinstance(value, Unbound):
        return f"0 /* {value.name}: bound at run time */"
    raise TypeError(value)


def folded(v: CVal) -> bool:
    """A constant known now (not one bound only at run time)."""
    return v.is_const and not isinstance(v.const, Unbound)


def describe(value: Any) -> str:
    """What a constant kernel code cannot hold is, for messages: 'a list', 'a fraction (0.5)'."""
    if isinstance(value, Fields):
        return "a whole aggregation or row"
    if isinstance(value, float):
        return f"a fraction ({value:g})"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def num(v: Any) -> int:
    """A constant number, duration (ns) or size (bytes) as a plain int."""
    if isinstance(v, Duration):
        return v.ns
    if isinstance(v, Size):
        return v.bytes
    if isinstance(v, bool):
        return int(v)
    return int(v)


def comparable(lt: str, rt: str, left: CVal, right: CVal) -> bool:
    """Values of types lt and rt can be compared (given neither is "any")."""
    if lt == rt:
        return lt != "stack"
    pair = {lt, rt}
    if pair <= {"int", "ptr", "bool"}:
        return True
    # A literal 0 compares with anything numeric (e.g. duration > 0).
    zero = (left.is_const and left.const == 0) or (right.is_const and right.const == 0)
    return zero and pair <= {"int", "duration", "size"}


def compare_hint(lt: str, rt: str) -> str | None:
    """How to fix a comparison of lt with rt that `comparable` refuses."""
    if {lt, rt} == {"duration", "int"}:
        return "durations compare with durations: write a unit, e.g. 1ms or 250us"
    if {lt, rt} == {"size", "int"}:
        return "sizes compare with sizes: write a unit, e.g. 4KiB"
    if "ptr" in (lt, rt) and "str" in (lt, rt):
        return "read the string first: str(args.<field>) == \"...\""
    if "str" in (lt, rt):
        return "strings are written in double quotes"
    return None


def arith_type(op: str, lt: str, rt: str) -> str | None:
    """The type of `lt op rt`, or None where op does not apply to those types."""
    if "any" in (lt, rt):  # bound at run time: the other side decides, if it can do arithmetic
        other = lt if rt == "any" else rt
        return other if other in ("any", "int", "ptr", "duration", "size") else None
    if lt in ("int", "ptr") and rt in ("int", "ptr"):
        return "int"
    for unit in ("duration", "size"):
        if lt == unit and rt == unit and op in ("+", "-"):
            return unit
        if lt == unit and rt == unit and op == "/":
            return "int"
        if {lt, rt} == {unit, "int"} and op in ("*",) or (lt == unit and rt == "int"
                                                           and op in ("/", "%", ">>", "<<")):
            return unit
    return None


def py_cmp(op: str, a: int, b: int) -> bool:
    """A comparison of two constants, folded now."""
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]


def py_arith(op: str, a: int, b: int) -> int:
    """Arithmetic on two constants, folded now."""
    return {"*": lambda: a * b, "/": lambda: a // b, "%": lambda: a % b, "+": lambda: a + b,
            "-": lambda: a - b, "<<": lambda: a << b, ">>": lambda: a >> b,
            "&": lambda: a & b, "^": lambda: a ^ b, "|": lambda: a | b}[op]()
