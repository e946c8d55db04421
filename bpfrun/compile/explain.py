"""What a runbook does to the machine it runs on: `bpfrun explain`, and the report section.

For each probe of each step: where it attaches (kind, tracepoint category, uprobe target and
function), which processes it watches (the `where` terms on pid, tid, comm, cgroup), what it
reads (kernel fields, user memory through `str()`/`argv()`, stacks, function arguments) and
what it costs (per system call, per context switch, per allocation, per sample...). For each
aggregation and event stream: what leaves the kernel (numbers, task names, kernel strings,
user memory, stacks), field by field, each at its place in the runbook.

Computed from the typed model (places, expressions) and what compiling the step decided
(the resolved probes and the Program's keys and event fields, which say what is a string or
a stack); never from the C text. The policy (compile/policy_check.py) reads the same facts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from bpfrun.compile.cexpr import NullInput
from bpfrun.compile.cfuncs import FUNCTION_PROBES, TASK_CGROUPS_SIZE, kernel_exprs
from bpfrun.compile.costs import Cost, cost_of
from bpfrun.compile.pipeline import compile_step, names_for, placeholder_values, substitute
from bpfrun.compile.program import KeyField, Program
from bpfrun.compile.resolution import resolve_step
from bpfrun.errors import Loc
from bpfrun.expr.evaluate import EvalError, Evaluator
from bpfrun.expr.nodes import Binary, Call, In, Name, Node, dotted, unparse
from bpfrun.expr.parser import walk
from bpfrun.frontend.model import Aggregation, Expr, Runbook, Step, Template
from bpfrun.kernel.resolve import Resolved
from bpfrun.kernel.tracefs import Kernel

# What a value that leaves the kernel is, from the least to the most sensitive.
NUMBER, TASK_NAME, KERNEL_STRING, STACK, USER_MEMORY = (
    "number", "task name", "kernel string", "stack", "user memory")
PROCESS_NAMES = ("pid", "tid", "comm", "cgroup", "uid")
ARG_NAMES = tuple(f"arg{i}" for i in range(8)) + ("retval",)
USER_POINTER_KINDS = ("uprobe", "uretprobe", "usdt")
ADDED_ROLE = "record added by the compiler for"  # + "task_cgroup() at"
# What the probes the compiler adds read (cfuncs.FUNCTION_PROBES), besides the task's identity.
ADDED_READS = {"task_cgroup": ("args.prev_pid",)}


@dataclass(frozen=True)
class Read:
    """One thing a probe reads: `what` is kernel field, user memory, kernel stack, user
    stack or function argument; `expr` as written."""

    what: str
    expr: str
    loc: Loc
    pointer: str | None = None  # str()/argv(): the pointer read through, as written


@dataclass(frozen=True)
class ProbeUse:
    step: str
    role: str  # probe | span begin | span end | ADDED_ROLE (task_cgroup()'s record)
    probe: str  # as it runs here (the first candidate that exists, else as written)
    kind: str
    category: str | None  # tracepoint category
    target: str | None  # uprobe/usdt: the binary or library as written ("libc")
    binary: str | None  # uprobe/usdt: its path here, when found
    function: str | None  # uprobe: the function
    processes: tuple[str, ...]  # `where` terms on pid/tid/comm/cgroup/uid; () = all
    reads: tuple[Read, ...]
    cost: Cost
    loc: Loc
    # With these params some `||` branch of `where` holds for every process (`params.pid ==
    # 0 || pid == params.pid` with pid 0): `processes` then only say what a param narrows.
    all_processes: bool = True
    sample: int | None = None  # `sample: 1/N`: records every Nth hit, counts scaled by N
    sampled: tuple[tuple[str, int], ...] = ()  # aggregations with their own `sample: 1/N`

    @property
    def user_pointers(self) -> bool:
        """Pointers here point into user memory (syscall arguments, uprobe arguments)."""
        return self.kind in USER_POINTER_KINDS or self.category == "syscalls"


@dataclass(frozen=True)
class Field:
    """One value that leaves the kernel: an aggregation key or an event field."""

    expr: str
    kind: str  # NUMBER, TASK_NAME, KERNEL_STRING, STACK, USER_MEMORY
    loc: Loc
    probe: str = ""  # where it is read (a span's begin for begin.*)
    pointers: tuple[str, ...] = ()  # USER_MEMORY: the user pointers read through


@dataclass(frozen=True)
class Output:
    step: str
    id: str
    what: str  # aggregation | events
    probe: str  # events: the probe that emits them; aggregation: the step's probes
    fields: tuple[Field, ...]  # keys of an aggregation (its values are numbers), event fields
    loc: Loc


@dataclass(frozen=True)
class Explanation:
    runbook: str
    path: str
    probes: tuple[ProbeUse, ...]
    outputs: tuple[Output, ...]
    unknown_steps: tuple[str, ...] = ()  # steps needing an earlier step's values to compile

    @property
    def user_memory_reads(self) -> tuple[tuple[ProbeUse, Read], ...]:
        return tuple((p, r) for p in self.probes for r in p.reads if r.what == USER_MEMORY)

    @property
    def user_memory_exports(self) -> tuple[tuple[Output, Field], ...]:
        return tuple((o, f) for o in self.outputs for f in o.fields if f.kind == USER_MEMORY)

    @property
    def aggregates_only(self) -> bool:
        """Only aggregated numbers leave the kernel, keyed by numbers, task names and stacks:
        no event records, no strings read from memory."""
        return all(o.what == "aggregation"
                   and all(f.kind in (NUMBER, TASK_NAME, STACK) for f in o.fields)
                   for o in self.outputs)


def explain_runbook(runbook: Runbook, params: dict[str, Any], kernel: Kernel,
                    only: Collection[str] | None = None) -> Explanation:
    """The Explanation of `runbook` (of the steps named in `only`) with `params` bound, probes
    resolved on `kernel`. Raises ValidationError when a step does not compile (as `compile`
    would)."""
    probes: list[ProbeUse] = []
    outputs: list[Output] = []
    unknown: list[str] = []
    for step in runbook.steps:
        if only is not None and step.id not in only:
            continue
        values = placeholder_values(runbook, step)
        bind = _binder(runbook, names_for(params, values))
        try:
            program: Program | None = compile_step(runbook, step, params, values, kernel,
                                                   require_probes=False).program
        except NullInput:
            program = None
            unknown.append(step.id)
        uses = _step_probes(step, resolve_step(step, kernel, bind), params)
        probes += [u for u, _ in uses]
        outputs += _step_outputs(step, uses, program)
    return Explanation(runbook.name, runbook.path, tuple(probes), tuple(outputs), tuple(unknown))


def _binder(runbook: Runbook, names: dict[str, Any]) -> Callable[[Template], str]:
    return lambda t: substitute(t, names, runbook)


# A probe of the model: its use, and the expressions evaluated there.
_Use = tuple[ProbeUse, list[Expr]]


def _step_probes(step: Step, resolved: Any, params: dict[str, Any]) -> list[_Use]:
    out: list[_Use] = []
    span = step.span
    if span is not None and resolved.begin is not None and resolved.end is not None:
        aggs = span.aggregate + span.pending
        begin_exprs = [*span.begin.key, *_opt(span.begin.where)]
        begin_exprs += [e for a in aggs for e in _agg_exprs(a) if _mentions_begin(e.node)]
        end_exprs = [*span.end.key, *_opt(span.end.where)]
        end_exprs += [e for a in aggs for e in _agg_exprs(a) if not _mentions_begin(e.node)]
        out.append(_use(step, "span begin", resolved.begin, span.begin.where, begin_exprs,
                        span.begin.loc, params))
        end, used = _use(step, "span end", resolved.end, span.end.where, end_exprs,
                         span.end.loc, params)
        out.append((replace(end, sampled=_sampled(span.aggregate)), used))
    for probe, res in zip(step.probes, resolved.probes, strict=True):
        if res is None or res.ref.kind == "interval":
            continue
        exprs = [*_opt(probe.where), *probe.emit,
                 *(e for a in probe.aggregate for e in _agg_exprs(a))]
        use, used = _use(step, "probe", res, probe.where, exprs, probe.loc, params)
        out.append((replace(use, sample=probe.sample, sampled=_sampled(probe.aggregate)),
                    used))
    return out + _added_probes(step, resolved.added, params)


def _added_probes(step: Step, added: dict[str, Resolved], params: dict[str, Any]) -> list[_Use]:
    """The probes the compiler adds for functions the step calls (task_cgroup(): a handler
    at every context switch), each at the first call, with what it reads."""
    out: list[_Use] = []
    calls = [(n.func, e.at(n)) for e in kernel_exprs(step) for n in walk(e.node)
             if isinstance(n, Call) and n.func in FUNCTION_PROBES]
    for func, loc in dict(reversed(calls)).items():  # the first call of each
        res = added.get(FUNCTION_PROBES[func])
        if res is None:
            continue
        use, _ = _use(step, f"{ADDED_ROLE} {func}() at", res, None, [], loc, params)
        reads = tuple(Read("kernel field", r, loc) for r in ADDED_READS.get(func, ()))
        cost = Cost(f"{use.cost.per}, a lookup in a map of up to {TASK_CGROUPS_SIZE} threads "
                    "(LRU) each", use.cost.rate)
        out.append((replace(use, reads=reads, cost=cost), []))
    return out


def _use(step: Step, role: str, res: Resolved, where: Expr | None, exprs: list[Expr],
         loc: Loc, params: dict[str, Any]) -> _Use:
    ref = res.ref
    category = ref.parts[0] if ref.kind == "tracepoint" else None
    uprobe = ref.kind in USER_POINTER_KINDS
    use = ProbeUse(step.id, role, ref.canonical, ref.kind, category,
                   ref.parts[0] if uprobe else None, res.target if uprobe else None,
                   ref.parts[-1] if uprobe else None,
                   _process_terms(where), (), cost_of(ref), loc,
                   _admits_all(where, params))
    reads = tuple(dict.fromkeys(r for e in exprs for r in _reads(e, use)))
    return replace(use, reads=reads), exprs


def _sampled(aggs: tuple[Aggregation, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((a.id, a.sample) for a in aggs if a.sample)


def _opt(e: Expr | None) -> list[Expr]:
    return [e] if e is not None else []


def _agg_exprs(a: Aggregation) -> list[Expr]:
    return [*_opt(a.value), *a.by, *_opt(a.where)]


def _mentions_begin(node: Node) -> bool:
    return any(isinstance(n, Name) and n.name == "begin" for n in walk(node))


def _admits_all(where: Expr | None, params: dict[str, Any]) -> bool:
    return where is None or _selects(where.node, params) == "all"


def _selects(node: Node, params: dict[str, Any]) -> str:
    """Which processes `node` lets through with these params: "all", "none" or "some".
    A condition on the event alone (retval != 0) does not pick processes: "all"."""
    if isinstance(node, Binary) and node.op in ("&&", "||"):
        sides = {_selects(node.left, params), _selects(node.right, params)}
        first, second = ("none", "all") if node.op == "&&" else ("all", "none")
        return first if first in sides else second if sides == {second} else "some"
    try:
        value = Evaluator({"params": params, "steps": {}}).truth(node)
    except (EvalError, TypeError, ValueError):  # reads the process or the event
        picks = any(_picks_process(dotted(n)) for n in walk(node))
        return "some" if picks else "all"
    return "all" if value else "none"


def _process_terms(where: Expr | None) -> tuple[str, ...]:
    """The comparisons of `where` that pick processes (pid == params.pid, comm == "x")."""
    if where is None:
        return ()
    out: list[str] = []
    for node in walk(where.node):
        sides: tuple[Node, ...]
        if isinstance(node, Binary) and node.op in ("==", "!=", "<", "<=", ">", ">="):
            sides = (node.left, node.right)
        elif isinstance(node, In):
            sides = (node.item,)
        else:
            continue
        if any(_picks_process(dotted(s)) for s in sides):
            out.append(unparse(node).strip("()"))
    return tuple(dict.fromkeys(out))


def _picks_process(path: str | None) -> bool:
    """pid, comm, cgroup..., or a tracepoint's field naming a task (args.prev_pid)."""
    if path is None or path.startswith(("params.", "steps.")):
        return False
    last = path.rsplit(".", 1)[-1]
    return last in PROCESS_NAMES or last.endswith(("_pid", "_comm")) or last == "pid"


def _reads(e: Expr, use: ProbeUse) -> list[Read]:
    out: list[Read] = []
    pointers = {id(a) for n in walk(e.node) if isinstance(n, Call) and n.func in ("str", "argv")
                for a in n.args}
    for node in walk(e.node):
        path = dotted(node) if id(node) not in pointers else None
        if isinstance(node, Call) and node.func in ("str", "argv") and node.args:
            what = USER_MEMORY if _reads_user(node, use) else "kernel memory"
            out.append(Read(what, unparse(node), e.at(node), dotted(node.args[0])))
        elif path in ("kstack", "begin.kstack"):
            out.append(Read("kernel stack", path, e.at(node)))
        elif path in ("ustack", "begin.ustack"):
            out.append(Read("user stack", path, e.at(node)))
        elif path is not None and _is_argument(path) and use.kind in USER_POINTER_KINDS:
            out.append(Read("function argument", f"{path} of {use.target}:{use.function}",
                            e.at(node)))
        elif path is not None and path.removeprefix("begin.").count(".") == 1 \
                and path.removeprefix("begin.").startswith("args."):
            out.append(Read("kernel field", path, e.at(node)))
    return out


def _is_argument(path: str) -> bool:
    last = path.rsplit(".", 1)[-1]
    return last in ARG_NAMES and path.split(".")[0] in (last, "entry", "begin")


def _reads_user(call: Call, use: ProbeUse) -> bool:
    """str()/argv() of a pointer where pointers are user addresses; str(comm) reads nothing."""
    arg = dotted(call.args[0])
    if arg in ("comm", "begin.comm"):
        return False
    return call.func == "argv" or use.user_pointers


def _step_outputs(step: Step, uses: list[_Use], program: Program | None) -> list[Output]:
    plans = {a.id: a for a in program.aggs} if program else {}
    events = iter(program.events) if program else iter(())
    at = {id(e): u for u, exprs in uses for e in exprs}
    names = ", ".join(dict.fromkeys(u.probe for u, _ in uses
                                    if not u.role.startswith(ADDED_ROLE)))
    out: list[Output] = []
    for agg in step.aggregations:
        plan = plans.get(agg.id)
        kfs = plan.keys if plan is not None else [None] * len(agg.by)
        fields = tuple(_field(e, kf, at.get(id(e))) for e, kf in zip(agg.by, kfs, strict=False))
        out.append(Output(step.id, agg.id, "aggregation", names, fields, agg.loc))
    for probe in step.probes:
        if not probe.emit:
            continue
        plan_ev = next(events, None)
        kfs = plan_ev.fields if plan_ev is not None else [None] * len(probe.emit)
        fields = tuple(_field(e, kf, at.get(id(e)))
                       for e, kf in zip(probe.emit, kfs, strict=False))
        use = at.get(id(probe.emit[0]))
        out.append(Output(step.id, plan_ev.id if plan_ev else probe.id or "events", "events",
                          use.probe if use else "", fields, probe.loc))
    return out


def _field(e: Expr, kf: KeyField | None, use: ProbeUse | None) -> Field:
    """What kind of value `e` is once it left the kernel."""
    user = [r for r in _reads(e, use) if r.what == USER_MEMORY] if use is not None else []
    if use is not None and user:
        return Field(e.text, USER_MEMORY, e.loc, use.probe,
                     tuple(r.pointer for r in user if r.pointer))
    kind = kf.kind if kf is not None else _guess_kind(e.node)
    if kind in ("stack", "ustack"):
        return Field(e.text, STACK, e.loc)
    if kind == "str":
        path = dotted(e.node)
        last = (path or "").rsplit(".", 1)[-1]
        name = last == "comm" or last.endswith("_comm")
        return Field(e.text, TASK_NAME if name else KERNEL_STRING, e.loc)
    return Field(e.text, NUMBER, e.loc)


def _guess_kind(node: Node) -> str:
    """A key's kind from its expression alone (a step compiled only at run time)."""
    path = dotted(node)
    if path in ("kstack", "ustack", "begin.kstack", "begin.ustack"):
        return "stack"
    if path in ("comm", "begin.comm") or (isinstance(node, Call) and node.func in ("str",
                                                                                   "argv")):
        return "str"
    return "int"
