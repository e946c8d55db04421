"""Kernel functions of expressions: str, startswith, syscall_name, syscall_nr, tcp_state, ntop,
argv, task_cgroup.

`call` type-checks one call and gives its CVal, reading through the ExprCompiler that met it
(the `Compiler` protocol): strings are read into bounded buffers, numbers shown by name in user
space (syscall, TCP state) keep their C and carry a decode tag; syscall_nr("futex") is the
number of the kernel's architecture, a constant.

Some functions read what a probe the compiler adds records (FUNCTION_PROBES): task_cgroup(tid)
reads the cgroup each thread had when it last left a CPU, recorded at every context switch
(lower/taskcgroup.py); `probes_needed` tells resolution which of those probes a step needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import STR_MAX, CompileError, CVal, Scope, Unbound, a_type, const_c
from bpfrun.expr.nodes import Call, Node, dotted
from bpfrun.expr.parser import walk
from bpfrun.frontend.model import Expr, Step
from bpfrun.kernel.syscalls import UnknownSyscall, syscall_nr

# task_cgroup(): the map of thread id → cgroup id, filled by a handler the compiler adds at
# every context switch. LRU, so it never fills: the threads switched out longest ago go first;
# sized for a busy host (about 5 MiB, preallocated).
TASK_CGROUPS_MAP = "bpfrun_task_cgroups"
TASK_CGROUPS_SIZE = 65536
# Kernel functions that read what a probe added by the compiler records → that probe.
FUNCTION_PROBES = {"task_cgroup": "tracepoint:sched:sched_switch"}


class Compiler(Protocol):
    """What kernel functions need from the ExprCompiler that compiles their call."""

    scope: Scope
    errors: list[CompileError]  # problems of the expression so far, each recorded once

    def operand(self, node: Node) -> CVal: ...

    def str_eq(self, var: CVal, literal: str, prefix_only: bool = False) -> str: ...

    def fields_hint(self, near: str | None = None) -> str | None: ...


def call(c: Compiler, node: Call) -> CVal:
    """The CVal of a call to one of the kernel functions."""
    func = _FUNCS.get(node.func)
    if func is None:
        c.errors.append(CompileError(
            f"unknown function '{node.func}' in a kernel expression", node,
            "kernel functions: str, startswith, syscall_name, syscall_nr, tcp_state, ntop, "
            "argv, task_cgroup"))
        for arg in node.args:  # their own problems too: `foo(args.nosuch)` has two
            c.operand(arg)
        return CVal("any", code="0")
    return func(c, node)


def _str(c: Compiler, node: Call) -> CVal:
    """str(ptr[, len]): the string a pointer points at, read into a bounded buffer."""
    if not 1 <= len(node.args) <= 2:
        raise CompileError("str() takes a pointer and an optional length", node)
    arg = c.operand(node.args[0])
    if arg.type == "str":
        return arg
    if arg.type not in ("ptr", "int", "any"):
        raise CompileError(f"str() reads a pointer, not {a_type(arg.type)}", node.args[0])
    size = STR_MAX
    if len(node.args) == 2:
        n = c.operand(node.args[1])
        if not (n.is_const and isinstance(n.const, int) and 1 <= n.const <= 256):
            raise CompileError("str()'s length must be a number from 1 to 256", node)
        size = n.const
    helper = ("bpf_probe_read_user_str" if c.scope.probe.user_pointers
              else "bpf_probe_read_kernel_str")
    code = arg.code
    # Reads of one pointer share a buffer: five 128-byte copies overflow the stack.
    return CVal("str", size=size, memo=f"{helper}:{size}:{code}", fill=lambda d, s: [
        f"{helper}(&{d}, {s}, (void *){code});"])


def _tcp_state(c: Compiler, node: Call) -> CVal:
    """tcp_state(n): a TCP state number, shown by name."""
    if len(node.args) != 1:
        raise CompileError("tcp_state() takes a TCP state number", node)
    st = c.operand(node.args[0])
    if st.type not in ("int", "any"):
        raise CompileError(f"tcp_state() takes a number, not {a_type(st.type)}", node)
    return CVal("int", code=st.code, decode="tcp_state")


def _syscall_name(c: Compiler, node: Call) -> CVal:
    """syscall_name(nr): a syscall number, shown by name."""
    if len(node.args) != 1:
        raise CompileError("syscall_name() takes a syscall number", node)
    nr = c.operand(node.args[0])
    if nr.type not in ("int", "any"):
        raise CompileError(f"syscall_name() takes a number, not {a_type(nr.type)}", node)
    return CVal("int", code=nr.code, decode="syscall")


def _syscall_nr(c: Compiler, node: Call) -> CVal:
    """syscall_nr("futex"): the number of a system call on the kernel's architecture, a
    constant (`begin.arg1 in [syscall_nr("futex"), syscall_nr("poll")]`). A call this
    architecture lacks (poll on arm64) is -1, which no system call has."""
    name = c.operand(node.args[0]) if len(node.args) == 1 else None
    if name is None or name.type not in ("str", "any") or not name.is_const:
        raise CompileError("syscall_nr() takes the name of a system call: syscall_nr(\"futex\")",
                           node, "the name must be known before the step runs: a string, a "
                           "param or an earlier step's value")
    if isinstance(name.const, Unbound):  # an earlier step's capture, bound at run time
        return CVal("any", code=const_c(name.const))
    try:
        nr = syscall_nr(name.const, c.scope.arch)
    except UnknownSyscall as e:
        raise CompileError(str(e), node.args[0]) from None
    value = -1 if nr is None else nr
    label = c_comment(name.const if nr is not None else f"{name.const}: none on {c.scope.arch}",
                      60)
    return CVal("int", code=f"{const_c(value)} /* {label} */", const=value)


def _startswith(c: Compiler, node: Call) -> CVal:
    """startswith(s, "prefix"): a string begins with a constant prefix."""
    if len(node.args) != 2:
        raise CompileError("startswith() takes a string and a prefix", node)
    s, prefix = c.operand(node.args[0]), c.operand(node.args[1])
    if s.type != "str" or prefix.type != "str" or not prefix.is_const:
        raise CompileError("startswith(string, \"prefix\") needs a constant prefix", node)
    if s.is_const:
        return CVal("bool", code="", const=s.const.startswith(prefix.const))
    return CVal("bool", code=c.str_eq(s, prefix.const, prefix_only=True))


def _argv(c: Compiler, node: Call) -> CVal:
    """argv(args.argv, i): the i-th string of a user-space array of strings (execve)."""
    if len(node.args) != 2:
        raise CompileError("argv() takes an array of strings and an index: argv(args.argv, 1)",
                           node)
    arr, idx = c.operand(node.args[0]), c.operand(node.args[1])
    if arr.type not in ("ptr", "int", "any"):
        raise CompileError(f"argv() reads a pointer, not {a_type(arr.type)}", node.args[0])
    if not (idx.is_const and isinstance(idx.const, int) and 0 <= idx.const < 32):
        raise CompileError("argv()'s index must be a number from 0 to 31", node.args[1])
    ptr = c.scope.fresh("argp")
    code, i = arr.code, idx.const
    return CVal("str", size=STR_MAX, memo=f"argv:{code}:{i}", fill=lambda d, s: [
        f"u64 {ptr} = 0;",
        f"bpf_probe_read_user(&{ptr}, sizeof({ptr}), (void *)({code} + {i * 8}));",
        f"if ({ptr}) bpf_probe_read_user_str(&{d}, {s}, (void *){ptr});"])


def _ntop(c: Compiler, node: Call) -> CVal:
    """ntop(args.daddr): a 4- or 16-byte address field, shown as an IP address."""
    arg = node.args[0] if len(node.args) == 1 else None
    path = dotted(arg) if arg is not None else None
    fmt = c.scope.probe.fmt
    if arg is None or not path or not path.startswith("args."):
        raise CompileError("ntop() takes an address field: ntop(args.daddr)", node)
    if fmt is None:
        return CVal("any", code="0")
    f = fmt.field(path[5:])
    if f is None or f.kind not in ("array", "int") or f.size not in (4, 16):
        raise CompileError(f"ntop() takes a 4- or 16-byte address field; {path} is not one",
                           arg, c.fields_hint())
    return CVal("addr", size=f.size,
                fill=lambda d, s: [f"bpf_probe_read_kernel(&{d}, {s}, &args->{f.name});"])


def _task_cgroup(c: Compiler, node: Call) -> CVal:
    """task_cgroup(tid): the cgroup id of the thread with that id as it last left a CPU (at
    sched_switch it is the current task, whose cgroup the kernel gives without reading its
    struct); 0 while unknown: a thread not switched out since the step attached. For the task
    that is not the current one: the woken task at sched_wakeup, `next` at sched_switch."""
    if len(node.args) != 1:
        raise CompileError("task_cgroup() takes a thread id: task_cgroup(args.next_pid)", node)
    tid = c.operand(node.args[0])
    if tid.type not in ("int", "any"):
        raise CompileError(f"task_cgroup() takes a thread id (a number), not "
                           f"{a_type(tid.type)}", node.args[0])
    c.scope.uses.task_cgroup = True
    return CVal("int", code=f"bpfrun_task_cgroup({tid.code})")


def probes_needed(step: Step, targeted: bool = False) -> list[str]:
    """The probes the compiler adds to `step` for the functions its kernel expressions call
    (FUNCTION_PROBES), each once; and, when the run has a target (`targeted`) and a handler
    of the step names its `target_task`, the record of each thread's cgroup that it reads."""
    calls = {n.func for e in kernel_exprs(step) for n in walk(e.node) if isinstance(n, Call)}
    if targeted and target_tasks(step):
        calls.add("task_cgroup")  # the same record, which also notes who is in the target
    return list(dict.fromkeys(FUNCTION_PROBES[f] for f in sorted(calls & FUNCTION_PROBES.keys())))


def target_tasks(step: Step) -> bool:
    """Whether a handler of `step` tests the run's target on a thread it names
    (`target_task`) rather than on the current task."""
    ends = (step.span.begin, step.span.end) if step.span is not None else ()
    return any(h.target_task is not None for h in (*ends, *step.probes))


def kernel_exprs(step: Step) -> list[Expr]:
    """Every expression of `step` compiled into the kernel: keys, predicates, values, events,
    target tasks."""
    out: list[Expr] = []
    if step.span is not None:
        for end in (step.span.begin, step.span.end):
            out += [*end.key, *(e for e in (end.where, end.target_task) if e is not None)]
    for probe in step.probes:
        out += [*probe.emit, *(e for e in (probe.where, probe.target_task) if e is not None)]
    for agg in step.aggregations:
        out += [*agg.by, *(e for e in (agg.value, agg.where) if e is not None)]
    return out


_FUNCS: dict[str, Callable[[Compiler, Call], CVal]] = {
    "str": _str,
    "tcp_state": _tcp_state,
    "ntop": _ntop,
    "argv": _argv,
    "syscall_name": _syscall_name,
    "syscall_nr": _syscall_nr,
    "startswith": _startswith,
    "task_cgroup": _task_cgroup,
}
