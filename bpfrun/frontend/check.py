"""Check: names and references across a runbook, before anything reaches the kernel.

Unique ids, `params.X` that exist, `steps.<id>.<name>` that point at an earlier step's
threshold, capture or aggregation, user-space expressions that only use names their place
can see and functions that exist, with as many arguments as they take, and a self-test
naming only what the runbook has (check_selftest). Every problem of an expression is
reported, each at its place. Types of kernel-side expressions are checked by lowering
against the kernel.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bpfrun.errors import Diagnostics, Loc
from bpfrun.expr.evaluate import FUNCTIONS, PERCENTILE_RANKS, call_problem
from bpfrun.expr.nodes import Attr, Call, Name, Node
from bpfrun.expr.parser import TemplateExpr, walk
from bpfrun.frontend.check_selftest import check_selftest
from bpfrun.frontend.durations import duration_problem
from bpfrun.frontend.model import Aggregation, Expr, Runbook, Step, Template
from bpfrun.frontend.params import check_defaults

# Names every step's thresholds, captures and messages can use besides its own ids, and what
# each is (measured in user space).
STEP_NAMES = {"elapsed": "the time this step's probes were attached",
              "series": "what its aggregations gained at each tick of an interval probe"}


def _chain(node: Node) -> list[str] | None:
    """Attr(Attr(Name a, b), c) → [a, b, c]."""
    names: list[str] = []
    while isinstance(node, Attr):
        names.append(node.name)
        node = node.obj
    if isinstance(node, Name):
        return [node.name, *reversed(names)]
    return None


def _root(node: Node) -> Name | None:
    """The Name a dotted chain starts from: `calls` of `calls.top`."""
    while isinstance(node, Attr):
        node = node.obj
    return node if isinstance(node, Name) else None


def _hint(name: str, options: Iterable[str]) -> str | None:
    opts = sorted(options)
    close = difflib.get_close_matches(name, opts, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known: {', '.join(opts)}" if opts else None


def kernel_expressions(step: Step) -> list[Expr]:
    """The expressions of `step` that lowering compiles into the kernel, in runbook order."""
    out: list[Expr] = []
    for p in step.probes:
        out += [e for e in (p.target_task, p.where) if e] + list(p.emit)
        for a in p.aggregate:
            out += [e for e in (a.value, a.where) if e] + list(a.by)
    if step.span:
        for end in (step.span.begin, step.span.end):
            out += list(end.key) + [e for e in (end.where, end.target_task) if e]
        for a in step.span.aggregate:
            out += [e for e in (a.value, a.where) if e] + list(a.by)
    return out


def reference_places(step: Step) -> set[tuple[int, int]]:
    """(line, col) of the places of `step` where a problem found here leaves lowering sound:
    each params./steps. name in its kernel expressions (lowering meets a wrong one again)
    and every part of its user-space expressions (thresholds, captures, messages), which
    lowering does not read."""
    places: set[tuple[int, int]] = set()
    for e in kernel_expressions(step):
        inner: set[int] = set()
        for n in walk(e.node):
            if isinstance(n, Attr) and id(n) not in inner:
                inner |= {id(sub) for sub in walk(n)}
                if (_chain(n) or [""])[0] in ("params", "steps"):
                    places.add(_place(e.at(n)))
    user: list[tuple[Node, Expr | Template]] = [(e.node, e) for _, e in step.captures]
    for t in step.thresholds:
        user.append((t.when.node, t.when))
        if t.message is not None:
            user += [(part.node, t.message) for part in t.message.parts
                     if isinstance(part, TemplateExpr)]
    for node, owner in user:
        places |= {_place(owner.at(n)) for n in walk(node)}
    return places


def _place(loc: Loc) -> tuple[int, int]:
    return loc.line, loc.col


def agg_fields(agg: Aggregation) -> frozenset[str]:
    """What `agg.<name>` can read of an aggregation after its step (runtime/collect.py)."""
    names = {"top", "rows", "total"}
    if agg.by:
        return frozenset(names | ({"count"} if agg.kind == "count" else set()))
    names |= {"value", "count"}
    if agg.kind in ("stats", "hist", "lhist"):
        names |= {"sum", "min", "max", "avg"}
    if agg.kind in ("hist", "lhist"):
        names |= {"buckets", *PERCENTILE_RANKS, *(f"{p}_low" for p in PERCENTILE_RANKS)}
    return frozenset(names)


class Checker:
    def __init__(self, runbook: Runbook) -> None:
        self.rb = runbook
        self.diags = Diagnostics()
        self.params = {p.name for p in runbook.params}
        self.step_names: dict[str, set[str]] = {}
        # Per step, the fields each aggregation or event probe offers (`calls.total`).
        self.step_fields: dict[str, dict[str, frozenset[str]]] = {}
        self.current = ""  # id of the step being checked

    def names_of(self, step: Step) -> set[str]:
        names = {t.id for t in step.thresholds} | {c for c, _ in step.captures}
        names |= {a.id for a in step.aggregations}
        names |= {p.id for p in step.probes if p.id}
        return names

    def refs(self, node: Node, loc_of: object, local: set[str] | None) -> None:
        """Check params./steps. references; with `local` (a user-space expression), bare
        names must be in it too, and calls must be to its functions."""
        at = loc_of.at  # type: ignore[attr-defined]
        seen_attr_roots: set[int] = set()
        for n in walk(node):
            if id(n) in seen_attr_roots:
                continue
            if isinstance(n, Call) and local is not None:
                self.call(n, at)
            chain = _chain(n) if isinstance(n, Attr) else None
            if chain:
                for sub in walk(n):
                    seen_attr_roots.add(id(sub))
                self.chain(chain, n, at)
            # `calls` in `calls.top[0].value` too: the root of every chain must exist here.
            root = _root(n)
            if root is not None and local is not None and root.name not in local \
                    and root.name not in ("params", "steps"):
                self.diags.error(f"unknown name '{root.name}' here", at(root),
                                 _hint(root.name, local))

    def call(self, node: Call, at: object) -> None:
        problem = call_problem(node)
        if problem is not None:
            hint = _hint(node.func, FUNCTIONS) if node.func not in FUNCTIONS else None
            self.diags.error(problem, at(node), hint)  # type: ignore[operator]

    def fields_of(self, step: Step) -> dict[str, frozenset[str]]:
        fields = {a.id: agg_fields(a) for a in step.aggregations}
        fields |= {p.id: frozenset({"rows", "count", "dropped"}) for p in step.probes
                   if p.id and p.emit}
        return fields

    def field(self, owner: str, name: str, fields: frozenset[str] | None, loc: Loc) -> None:
        if fields is not None and name not in fields:
            self.diags.error(f"'{owner}' has no field '{name}'", loc, _hint(name, fields))

    def chain(self, chain: list[str], node: Node, at: object) -> None:
        loc: Loc = at(node)  # type: ignore[operator]
        local = self.step_fields.get(self.current, {})
        if chain[0] in local and len(chain) > 1 and chain[0] not in ("params", "steps"):
            self.field(chain[0], chain[1], local[chain[0]], loc)
        if chain[0] == "params":
            if len(chain) < 2 or chain[1] not in self.params:
                name = chain[1] if len(chain) > 1 else ""
                self.diags.error(f"unknown param '{name}'", loc, _hint(name, self.params))
        elif chain[0] == "steps":
            if len(chain) < 3:
                self.diags.error("write steps.<step id>.<threshold, capture or aggregation>",
                                 loc)
            elif chain[1] == self.current and chain[1] not in self.step_names:
                self.diags.error(f"steps.{chain[1]} is this step: its results are not known "
                                 "until it has run", loc,
                                 f"in thresholds and captures, write '{chain[2]}' without "
                                 f"'steps.{chain[1]}.'")
            elif chain[1] not in self.step_names:
                later = any(s.id == chain[1] for s in self.rb.steps)
                msg = (f"step '{chain[1]}' runs later; only earlier steps can be used" if later
                       else f"unknown step '{chain[1]}'")
                self.diags.error(msg, loc, _hint(chain[1], self.step_names)
                                 if not later else None)
            elif chain[2] not in self.step_names[chain[1]]:
                self.diags.error(f"step '{chain[1]}' has no threshold, capture or aggregation "
                                 f"'{chain[2]}'", loc, _hint(chain[2], self.step_names[chain[1]]))
            elif len(chain) > 3:
                self.field(f"steps.{chain[1]}.{chain[2]}", chain[3],
                           self.step_fields[chain[1]].get(chain[2]), loc)

    def step_ref(self, chain: list[str], loc: Loc) -> None:
        """`<step>.<name>[.<field>]` of a regression gate."""
        step, name = chain[0], chain[1]
        if name not in self.step_names[step]:
            self.diags.error(f"step '{step}' has no threshold, capture or aggregation "
                             f"'{name}'", loc, _hint(name, self.step_names[step]))
        elif len(chain) > 2:
            self.field(f"{step}.{name}", chain[2], self.step_fields[step].get(name), loc)

    def span_key(self, key: Expr, what: str = "a span key") -> None:
        """A span's key finds the begin; what is known only once it is found cannot be in it
        (nor in a target_task: the thread the event is about, known at the event)."""
        for n in walk(key.node):
            if isinstance(n, Name) and n.name in ("duration", "begin"):
                self.diags.error(f"{what} cannot use '{n.name}': it is known only once "
                                 "the key has found the begin", key.at(n),
                                 "key both ends by what they share, e.g. tid or args.<field>")

    def template(self, t: Template | None, local: set[str] | None) -> None:
        if t is None:
            return
        for part in t.parts:
            if isinstance(part, TemplateExpr):
                self.refs(part.node, t, local)

    def step(self, step: Step) -> None:
        ids: dict[str, Loc] = {}
        named = ([("aggregation", a.id, a.loc) for a in step.aggregations]
                 + [("probe", p.id, p.loc) for p in step.probes if p.id]
                 + [("threshold", t.id, t.loc) for t in step.thresholds]
                 + [("capture", c, e.loc) for c, e in step.captures])
        for kind, name, loc in sorted(named, key=lambda n: (n[2].line, n[2].col)):
            if name in ids:
                self.diags.error(f"{kind} id '{name}' is used twice in step '{step.id}'", loc,
                                 f"the first is at {ids[name]}")
            ids.setdefault(name, loc)
            if name in STEP_NAMES:
                self.diags.error(f"{kind} id '{name}' is reserved: it is {STEP_NAMES[name]}",
                                 loc, f"rename the {kind}")
        outer: set[str] = set()  # names from outside the step: params and steps
        if step.when is not None:
            self.refs(step.when.node, step.when, outer)
        self.template(step.duration, outer)
        problem = duration_problem(step.duration.text) if step.duration.is_literal else None
        if problem:
            self.diags.error(f"step duration: {problem}", step.duration.loc)
        for p in step.probes:
            for c in p.candidates:
                self.template(c, outer)
            if p.sample is not None and p.emit:
                self.diags.error("a sampled probe cannot emit: its rows would be a sample "
                                 "no count could be scaled back", p.loc,
                                 "aggregate instead, or drop `sample`")
        if step.span:
            for which, end in (("begin", step.span.begin), ("end", step.span.end)):
                for c in end.candidates:
                    self.template(c, outer)
                    if c.text.lstrip().startswith("interval:"):
                        self.diags.error(f"a span cannot {which} at an interval probe: it "
                                         "runs in user space, with no process or key",
                                         c.loc, "use a kernel probe, e.g. a tracepoint")
                for k in end.key:
                    self.span_key(k)
                if end.target_task is not None:
                    self.span_key(end.target_task, f"a span {which}'s target_task")
            for a in step.span.pending:
                if a.sample is not None:
                    self.diags.error("a pending aggregation is computed at the end from the "
                                     "spans still open: it cannot be sampled", a.loc,
                                     "sample the span's aggregations instead")
        for e in kernel_expressions(step):
            self.refs(e.node, e, None)
        local = (self.names_of(step) - {t.id for t in step.thresholds}) | set(STEP_NAMES)
        for _, e in step.captures:
            self.refs(e.node, e, local - {c for c, _ in step.captures})
        for t in step.thresholds:
            self.refs(t.when.node, t.when, local)
            self.template(t.message, local | {t.id for t in step.thresholds})

    def run(self) -> None:
        check_defaults(self.rb, self.diags)
        seen: dict[str, Loc] = {}
        for step in self.rb.steps:
            if step.id in seen:
                self.diags.error(f"step id '{step.id}' is used twice", step.loc,
                                 f"the first is at {seen[step.id]}")
            seen[step.id] = step.loc
            self.current = step.id
            self.step_fields[step.id] = self.fields_of(step)
            self.step(step)
            self.step_names[step.id] = self.names_of(step)
        self.regressions()
        check_selftest(self.rb, self.diags)

    def regressions(self) -> None:
        """A regression gate reads the run's steps by id (`runq.dist.p99`), the baseline's
        under `baseline.` and params: every such name must exist, as in a `when`."""
        self.current = ""
        seen: dict[str, Loc] = {}
        for r in self.rb.regressions:
            if r.id in seen:
                self.diags.error(f"regression id '{r.id}' is used twice", r.loc,
                                 f"the first is at {seen[r.id]}")
            seen.setdefault(r.id, r.loc)
            self.regression_refs(r.when.node, r.when)
            for part in r.message.parts if r.message else ():
                if isinstance(part, TemplateExpr):
                    self.regression_refs(part.node, r.message)

    def regression_refs(self, node: Node, loc_of: object) -> None:
        at = loc_of.at  # type: ignore[attr-defined]
        inner: set[int] = set()
        for n in walk(node):
            if isinstance(n, Call):
                self.call(n, at)
            if id(n) in inner or not isinstance(n, Attr | Name):
                continue
            inner |= {id(sub) for sub in walk(n)}
            chain = _chain(n) or []
            if chain[:1] == ["baseline"]:
                chain = chain[1:]
            if chain[:1] == ["params"]:
                self.chain(chain, n, at)
            elif chain and chain[0] in self.step_names and len(chain) > 1:
                self.step_ref(chain, at(n))
            elif chain:
                self.diags.error(f"unknown name '{'.'.join(chain[:2])}' in a regression gate",
                                 at(n), "write <step>.<aggregation, threshold or capture>, "
                                 "baseline.<the same> or params.<name>")


def check_runbook(runbook: Runbook) -> None:
    """Raise ValidationError listing every reference problem of the runbook."""
    checker = Checker(runbook)
    checker.run()
    checker.diags.raise_if_any({runbook.path: runbook.source})
