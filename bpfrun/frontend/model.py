"""The checked-shape model of a runbook: typed, frozen dataclasses built from a loaded Document.

Building the model parses every expression and `${{ }}` template and records where each came
from, so that later passes (check, resolve, lower) report problems at file:line:col. The
document has already passed the JSON Schema, so shapes are trusted here; meaning is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bpfrun.errors import Diagnostics, Loc
from bpfrun.expr.nodes import Literal, Node
from bpfrun.expr.parser import ExprSyntaxError, TemplateExpr, parse, parse_template
from bpfrun.frontend.loader import Document
from bpfrun.frontend.positions import char_locs as char_locs_of
from bpfrun.frontend.selftest import Selftest, build_selftest

PROBE_KINDS = ("tracepoint", "rawtracepoint", "kprobe", "kretprobe", "uprobe", "uretprobe",
               "usdt", "profile", "software", "interval")
AGG_KINDS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")
# What expressions can read of a histogram (`dist.p99`): its stats and percentiles.
HIST_STATS = ("count", "sum", "min", "max", "avg", "p50", "p90", "p99")
DEFAULT_STEP_DURATION = "10s"


@dataclass(frozen=True)
class Expr:
    """An expression as written in the runbook, parsed, with the YAML scalar's location."""

    text: str
    node: Node
    loc: Loc
    # The file line and column of each character of `text`, where it is not a plain offset
    # (block scalars, escapes, folded lines: positions.py).
    char_locs: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)

    def at(self, node: Node) -> Loc:
        if self.char_locs:
            i = min(node.offset, len(self.char_locs) - 1)
            line, col = self.char_locs[i]
            return Loc(self.loc.file, line, col, "", max(1, node.length))
        return self.loc.inner(node.offset, max(1, node.length))


@dataclass(frozen=True)
class Template:
    """A string value that may contain `${{ expr }}` substitutions."""

    text: str
    parts: tuple[str | TemplateExpr, ...]
    loc: Loc
    # The file line and column of each character of `text`, where it is not a plain offset.
    char_locs: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def at(self, node: Node) -> Loc:
        if self.char_locs:
            i = min(node.offset, len(self.char_locs) - 1)
            line, col = self.char_locs[i]
            return Loc(self.loc.file, line, col, "", max(1, node.length))
        return self.loc.inner(node.offset, max(1, node.length))


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any  # raw YAML value; typed by bpfrun.frontend.params
    has_default: bool
    description: str
    choices: tuple[Any, ...]
    loc: Loc


@dataclass(frozen=True)
class Aggregation:
    id: str
    kind: str
    value: Expr | None  # None for count
    by: tuple[Expr, ...]
    where: Expr | None
    top: int | None
    unit: str | None
    size: int | None
    bounds: tuple[Any, Any, Any] | None  # lhist (min, max, step) as written
    loc: Loc
    sample: int | None = None  # `sample: 1/N`: N (every Nth hit recorded, counts scaled)


@dataclass(frozen=True)
class Probe:
    """One probe with its alternatives: `probe` first, then `fallbacks` in order."""

    candidates: tuple[Template, ...]
    id: str | None
    where: Expr | None
    aggregate: tuple[Aggregation, ...]
    emit: tuple[Expr, ...]
    limit: int | None
    loc: Loc
    sample: int | None = None  # `sample: 1/N`: N (every Nth hit recorded, counts scaled)
    # A thread id: the run's target is tested on this thread, not the current task
    target_task: Expr | None = None


@dataclass(frozen=True)
class SpanEnd:
    candidates: tuple[Template, ...]
    key: tuple[Expr, ...]
    where: Expr | None
    loc: Loc
    target_task: Expr | None = None  # as Probe.target_task


@dataclass(frozen=True)
class Span:
    begin: SpanEnd
    end: SpanEnd
    aggregate: tuple[Aggregation, ...]
    max_pending: int | None
    loc: Loc
    pending: tuple[Aggregation, ...] = ()  # over begins still open when the step ends


@dataclass(frozen=True)
class Threshold:
    id: str
    when: Expr
    severity: str
    message: Template | None
    loc: Loc


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    why: str | None
    when: Expr | None
    duration: Template
    stop_after: int | None
    probes: tuple[Probe, ...]
    span: Span | None
    thresholds: tuple[Threshold, ...]
    captures: tuple[tuple[str, Expr], ...]
    loc: Loc

    @property
    def aggregations(self) -> tuple[Aggregation, ...]:
        aggs = tuple(a for p in self.probes for a in p.aggregate)
        return aggs + ((self.span.aggregate + self.span.pending) if self.span else ())


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    description: str
    tags: tuple[str, ...]
    params: tuple[Param, ...]
    steps: tuple[Step, ...]
    selftest: Selftest | None
    path: str
    source: str = field(repr=False)
    # Gates on the change from a baseline run (`run --baseline`): `runq.dist.p99 >
    # baseline.runq.dist.p99 * 1.5`; judged only when a baseline is given.
    regressions: tuple[Threshold, ...] = ()

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class _Builder:
    """Walks the Document, building nodes and collecting every problem before raising."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.diags = Diagnostics()
        self.lines = doc.text.splitlines()  # once: positions of every scalar are read from it

    def expr(self, value: Any, path: tuple[Any, ...]) -> Expr | None:
        loc = self.doc.loc(path)
        if isinstance(value, bool):
            text = "true" if value else "false"
            return Expr(text, Literal(0, len(text), value, "bool"), loc)
        text = str(value)
        if "${{" in text:
            self.diags.error("`${{ }}` is for string values; write the expression bare here",
                             loc, "e.g. `where: pid == params.pid`")
            return None
        char_locs = char_locs_of(self.lines, loc, text)
        try:
            return Expr(text, parse(text), loc, char_locs)
        except ExprSyntaxError as e:
            probe = Expr(text, Literal(e.offset, e.length, None, "null"), loc, char_locs)
            self.diags.error(str(e.args[0]), probe.at(probe.node))
            return None

    def template(self, value: Any, path: tuple[Any, ...]) -> Template | None:
        loc = self.doc.loc(path)
        text = str(value)
        char_locs = char_locs_of(self.lines, loc, text) if "${{" in text else ()
        try:
            return Template(text, tuple(parse_template(text)), loc, char_locs)
        except ExprSyntaxError as e:
            probe = Template(text, (), loc, char_locs)
            self.diags.error(str(e.args[0]), probe.at(Literal(e.offset, e.length, None, "null")))
            return None

    def opt_expr(self, d: dict[str, Any], key: str, path: tuple[Any, ...]) -> Expr | None:
        return self.expr(d[key], (*path, key)) if key in d else None

    def candidates(self, d: dict[str, Any], path: tuple[Any, ...]) -> tuple[Template, ...]:
        texts = [(d["probe"], (*path, "probe"))]
        texts += [(f, (*path, "fallbacks", i)) for i, f in enumerate(d.get("fallbacks", []))]
        out = [self.template(t, p) for t, p in texts]
        return tuple(t for t in out if t is not None)

    def aggregation(self, d: dict[str, Any], path: tuple[Any, ...]) -> Aggregation:
        kind = "lhist" if "lhist" in d else next(k for k in AGG_KINDS if k in d)
        value = None if kind == "count" else self.expr(d[kind], (*path, kind))
        bounds = (d.get("min"), d.get("max"), d.get("step")) if kind == "lhist" else None
        return Aggregation(
            id=d["id"], kind=kind, value=value,
            by=tuple(e for i, b in enumerate(d.get("by", []))
                     if (e := self.expr(b, (*path, "by", i))) is not None),
            where=self.opt_expr(d, "where", path), top=d.get("top"), unit=d.get("unit"),
            size=d.get("size"), bounds=bounds, loc=self.doc.loc(path),
            sample=_sample(d))

    def aggregations(self, items: list[Any], path: tuple[Any, ...]) -> tuple[Aggregation, ...]:
        return tuple(self.aggregation(a, (*path, i)) for i, a in enumerate(items))

    def probe(self, d: dict[str, Any], path: tuple[Any, ...]) -> Probe:
        return Probe(
            candidates=self.candidates(d, path), id=d.get("id"),
            where=self.opt_expr(d, "where", path),
            aggregate=self.aggregations(d.get("aggregate", []), (*path, "aggregate")),
            emit=tuple(e for i, x in enumerate(d.get("emit", []))
                       if (e := self.expr(x, (*path, "emit", i))) is not None),
            limit=d.get("limit"), loc=self.doc.loc(path),
            sample=_sample(d), target_task=self.opt_expr(d, "target_task", path))

    def span_end(self, d: dict[str, Any], path: tuple[Any, ...]) -> SpanEnd:
        keys = d["key"] if isinstance(d["key"], list) else [d["key"]]
        kpath = (*path, "key")
        key_exprs = [self.expr(k, (*kpath, i) if isinstance(d["key"], list) else kpath)
                     for i, k in enumerate(keys)]
        return SpanEnd(self.candidates(d, path), tuple(k for k in key_exprs if k is not None),
                       self.opt_expr(d, "where", path), self.doc.loc(path),
                       self.opt_expr(d, "target_task", path))

    def thresholds(self, items: list[Any], path: tuple[Any, ...]) -> tuple[Threshold, ...]:
        """A step's thresholds, or the runbook's regression gates (the same shape)."""
        out = []
        for i, t in enumerate(items):
            tp = (*path, i)
            when = self.expr(t["when"], (*tp, "when"))
            msg = self.template(t["message"], (*tp, "message")) if "message" in t else None
            if when is not None:
                out.append(Threshold(t["id"], when, t.get("severity", "warning"), msg,
                                     self.doc.loc(tp)))
        return tuple(out)

    def step(self, d: dict[str, Any], path: tuple[Any, ...]) -> Step:
        span = None
        if "span" in d:
            sp = (*path, "span")
            s = d["span"]
            span = Span(self.span_end(s["begin"], (*sp, "begin")),
                        self.span_end(s["end"], (*sp, "end")),
                        self.aggregations(s.get("aggregate", []), (*sp, "aggregate")),
                        s.get("max_pending"), self.doc.loc(sp),
                        self.aggregations(s.get("pending", []), (*sp, "pending")))
        duration = self.template(d.get("duration", DEFAULT_STEP_DURATION), (*path, "duration"))
        thresholds = self.thresholds(d.get("thresholds", []), (*path, "thresholds"))
        captures = []
        for name, text in (d.get("capture") or {}).items():
            e = self.expr(text, (*path, "capture", name))
            if e is not None:
                captures.append((name, e))
        return Step(
            id=d["id"], title=d.get("title", d["id"]), why=d.get("why"),
            when=self.opt_expr(d, "when", path),
            duration=duration or Template("10s", ("10s",), self.doc.loc(path)),
            stop_after=d.get("stop_after"),
            probes=tuple(self.probe(p, (*path, "probes", i))
                         for i, p in enumerate(d.get("probes", []))),
            span=span, thresholds=tuple(thresholds), captures=tuple(captures),
            loc=self.doc.loc(path))

    def runbook(self) -> Runbook:
        d = self.doc.data
        params = tuple(
            Param(name, p["type"], p.get("default"), "default" in p, p.get("description", ""),
                  tuple(p.get("choices", ())), self.doc.loc(("params", name)))
            for name, p in (d.get("params") or {}).items())
        steps = tuple(self.step(s, ("steps", i)) for i, s in enumerate(d["steps"]))
        return Runbook(d["name"], d["title"], d.get("description", ""),
                       tuple(d.get("tags", ())), params, steps, build_selftest(self.doc),
                       self.doc.path, self.doc.text,
                       self.thresholds(d.get("regressions", []), ("regressions",)))


def build_runbook(doc: Document) -> Runbook:
    """Document (schema-valid) → Runbook; raises ValidationError listing every problem."""
    builder = _Builder(doc)
    runbook = builder.runbook()
    builder.diags.raise_if_any({doc.path: doc.text})
    return runbook


def _sample(d: dict[str, Any]) -> int | None:
    """`sample: 1/N` (the schema checked its form) → N."""
    return int(d["sample"].split("/")[1]) if "sample" in d else None
