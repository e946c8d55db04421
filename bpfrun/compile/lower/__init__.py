"""Lower: one step of a runbook, its probes resolved → a Program (maps, structs, probe
functions, attach plan).

Every decision about the generated C is made here, in Python; the template only lays the
pieces out. Each construct has its module of functions over one StepContext: probe.py
(probes and predicates), aggregation.py (with units.py), events.py, span.py, stacks.py,
values.py (storing a value into a record), handlers.py (probe functions) and taskcgroup.py
(the record task_cgroup() reads, added where a step calls it). Aggregations
live in per-CPU maps (no atomics on the hot path), predicates run before any map lookup, and
every way data can be lost (full maps, failed stack ids, ring-buffer overflow, begins without
an end) is counted in a map the runner reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bpfrun.compile.cexpr import CompileError
from bpfrun.compile.lower.context import StepContext
from bpfrun.compile.lower.probe import lower_probe
from bpfrun.compile.lower.span import lower_span
from bpfrun.compile.lower.taskcgroup import record_task_cgroups
from bpfrun.compile.program import (
    LOST_KINDS,
    STACK_LOST,
    STACK_NONE,
    STACK_STORAGE,
    AggPlan,
    AttachPlan,
    CgroupFilter,
    EventPlan,
    KeyField,
    Program,
)
from bpfrun.compile.resolution import StepProbes
from bpfrun.frontend.model import Step, Template
from bpfrun.kernel.features import Features


def lower_step(step: Step, probes: StepProbes, consts: dict[str, Any], features: Features,
               substitute: Callable[[Template], str], sources: dict[str, str],
               target: CgroupFilter | None = None) -> Program:
    """Step → Program. Raises ValidationError with every problem of the step, the probe
    names that resolution refused first, or cexpr.NullInput (an earlier step's value it
    needs is null). `target`: the run's, for the handlers that name their target_task
    (lower/target.py aims the others once the step is lowered)."""
    ctx = StepContext(step, consts, features, substitute)
    ctx.prog.cgroup = target
    ctx.diags.items += probes.problems
    ctx.prog.unchecked += probes.notes
    span = step.span
    if span is not None and probes.begin is not None and probes.end is not None:
        try:
            lower_span(ctx, span, probes.begin, probes.end)
        except CompileError as e:
            ctx.error(str(e), span.loc, e.hint)
    for probe, res in zip(step.probes, probes.probes, strict=True):
        if res is not None:
            lower_probe(ctx, probe, res)
    record_task_cgroups(ctx, probes.added)
    ctx.prog.structs[:0] = list(ctx.tp_structs.values())
    ctx.diags.raise_if_any(sources)
    return ctx.prog


__all__ = ["AggPlan", "AttachPlan", "EventPlan", "KeyField", "LOST_KINDS", "Program",
           "STACK_LOST", "STACK_NONE", "STACK_STORAGE", "lower_step"]
