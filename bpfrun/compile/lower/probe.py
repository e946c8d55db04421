"""Probes and predicates: a probe's handler runs its `where` first (before any map lookup),
then its aggregations and events; an `interval` probe is a user-space tick instead. Under a
target, a handler that names its `target_task` tests that thread first (lower/target.py)."""

from __future__ import annotations

from bpfrun.compile.cexpr import CompileError, ExprCompiler, Scope, a_type
from bpfrun.compile.lower.aggregation import sample_gate
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.events import lower_events
from bpfrun.compile.lower.handlers import add_handler, function_for
from bpfrun.compile.lower.sharing import lower_aggregations
from bpfrun.compile.lower.target import targeted, task_check
from bpfrun.frontend.model import Expr, Probe
from bpfrun.kernel.resolve import Resolved


def lower_probe(ctx: StepContext, probe: Probe, res: Resolved) -> None:
    if res.ref.kind == "interval":
        lower_interval(ctx, probe, res)
        return
    scope = ctx.scope(res)
    guard = predicate(ctx, probe.where, scope, res.ref.canonical)
    fn = function_for(ctx, res)
    if guard is None:
        return  # the predicate folded to false: the probe can never contribute
    body = target_task_check(ctx, probe.target_task, scope, res) + guard
    if probe.sample and probe.sample > 1:
        body += sample_gate(ctx, probe.sample, "return 0")
    if ctx.prog.stop_after:
        body.append("bpfrun_hit();")
    first = len(ctx.prog.aggs)
    body += lower_aggregations(ctx, probe.aggregate, scope)
    for plan in ctx.prog.aggs[first:]:
        plan.sample *= probe.sample or 1  # the runner scales its counts and sums by it
    if probe.emit:
        body += lower_events(ctx, probe, res, scope)
    add_handler(ctx, fn, res, f"{res.ref.canonical} (runbook {probe.loc})", body, scope.uses)
    ctx.prog.handlers[-1].target_task = aimed_at_task(ctx, probe.target_task)


def lower_interval(ctx: StepContext, probe: Probe, res: Resolved) -> None:
    """A user-space tick: the runner snapshots this step's aggregations each period."""
    if probe.where or probe.aggregate or probe.emit or probe.sample:
        ctx.error("an interval probe runs in user space: it takes no where, aggregate, "
                  "sample or emit (it records the step's aggregations over time)", probe.loc)
    unit, n = res.ref.parts
    ctx.prog.interval = int(n) * (1.0 if unit == "s" else 0.001)


def predicate(ctx: StepContext, expr: Expr | None, scope: Scope, what: str) -> list[str] | None:
    """Statements that return early unless `expr` holds; None when it can never hold."""
    if expr is None:
        return []
    comp = ExprCompiler(scope)
    try:
        v = comp.predicate(expr.node)
    except CompileError as e:
        ctx.compile_error(e, expr)
        return []
    ctx.prog.predicates[what] = expr.text
    if v.is_const:
        return [] if v.const else None
    return [*comp.take_pre(), f"if (!{v.code}) return 0;"]


def aimed_at_task(ctx: StepContext, expr: Expr | None) -> bool:
    """The handler tests the run's target on the thread `expr` names (lower/target.py)."""
    return expr is not None and targeted(ctx.prog.cgroup)


def target_task_check(ctx: StepContext, expr: Expr | None, scope: Scope,
                      res: Resolved) -> list[str]:
    """The statements returning unless the thread `expr` names was in the run's target (its
    target_task); none without a target — the expression is then only type-checked, in a
    scope of its own, so that it costs the handler nothing."""
    if expr is None:
        return []
    aimed = aimed_at_task(ctx, expr)
    comp = ExprCompiler(scope if aimed else ctx.scope(res))
    try:
        v = comp.value(expr.node)
    except CompileError as e:
        ctx.compile_error(e, expr)
        return []
    if v.type not in ("int", "any"):
        ctx.error(f"target_task is a thread id (a number), not {a_type(v.type)}",
                  expr.at(expr.node), "e.g. target_task: args.pid")
        return []
    if not aimed:
        return []
    assert ctx.prog.cgroup is not None  # aimed
    return [*comp.take_pre(), task_check(ctx.prog.cgroup, v.code)]
