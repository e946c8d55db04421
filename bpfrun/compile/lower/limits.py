"""Limits of a histogram: the values its step compares a percentile with, counted exactly.

A log2 bucket's upper bound is up to twice the value it stands for, so `dist.p99 > X`
decided on it fires early. When a step compares a histogram's percentile with a value known
at compile time (a param, a constant, an earlier step's value), or asks `over(dist, X)`, the
kernel also counts the values above X; the runtime then decides the comparison on that exact
count (investigate.py via collect.py). Each limit L counts `x > L` in base units (ns, bytes):
`p >= X` and `p < X` are decided on L = X - 1, exact for the integer values BPF records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bpfrun.compile.lower.context import StepContext
from bpfrun.expr.evaluate import PERCENTILE_RANKS, EvalError, Evaluator
from bpfrun.expr.nodes import Attr, Binary, Call, Index, Name, Node, Unary
from bpfrun.expr.parser import TemplateExpr
from bpfrun.frontend.model import Aggregation
from bpfrun.units import Duration, Size

MAX_LIMITS = 8  # counters per histogram value: each is one compare and add per event
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}


def hist_limits(ctx: StepContext, agg: Aggregation) -> tuple[int, ...]:
    """The limits (base units, ascending) the step's expressions compare `agg`'s
    percentiles with or count values over; () when none is known at compile time."""
    found: set[int] = set()
    for node in _expressions(ctx):
        for sub in _walk(node):
            for limit_node, strict in _limit_uses(sub, agg.id):
                value = _constant(ctx, limit_node)
                if value is not None:
                    found.add(value if strict else value - 1)
    return tuple(sorted(found))[:MAX_LIMITS]


def _expressions(ctx: StepContext) -> Iterator[Node]:
    step = ctx.step
    for t in step.thresholds:
        yield t.when.node
        if t.message is not None:
            yield from (p.node for p in t.message.parts if isinstance(p, TemplateExpr))
    for _, expr in step.captures:
        yield expr.node


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in vars(node).values():
        if isinstance(child, Node):
            yield from _walk(child)
        elif isinstance(child, tuple):
            for c in child:
                if isinstance(c, Node):
                    yield from _walk(c)


def _limit_uses(node: Node, agg_id: str) -> Iterator[tuple[Node, bool]]:
    """(the limit's expression, whether it counts `x > limit` (True) or `x >= limit`)."""
    if isinstance(node, Call) and node.func == "over" and len(node.args) == 2 \
            and _names_agg(node.args[0], agg_id):
        yield node.args[1], True
    if isinstance(node, Binary) and node.op in _FLIP:
        for pct, other, op in ((node.left, node.right, node.op),
                               (node.right, node.left, _FLIP[node.op])):
            if isinstance(pct, Attr) and pct.name in PERCENTILE_RANKS \
                    and _names_agg(pct.obj, agg_id):
                yield other, op in (">", "<=")


def _names_agg(node: Node, agg_id: str) -> bool:
    """`dist`, or one of its rows: `dist.top[0]`, `dist.rows[i]`."""
    if isinstance(node, Name):
        return node.name == agg_id
    if isinstance(node, Index) and isinstance(node.obj, Attr) and node.obj.name in ("top", "rows"):
        return _names_agg(node.obj.obj, agg_id)
    return False


def _constant(ctx: StepContext, node: Node) -> int | None:
    """The limit in base units if params and earlier steps' values decide it, else None."""
    if _reads_step_locals(node):
        return None
    try:
        value: Any = Evaluator(dict(ctx.consts)).eval(node)
    except (EvalError, TypeError, ValueError, KeyError):
        return None
    if isinstance(value, Duration):
        return value.ns
    if isinstance(value, Size):
        return value.bytes
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None  # null, unbound before a run, or not a number


def _reads_step_locals(node: Node) -> bool:
    """Names other than params and steps are this step's own results: not known yet."""
    return any(isinstance(n, Name) and n.name not in ("params", "steps")
               for n in _walk(node) if not isinstance(n, Unary))
