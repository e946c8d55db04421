"""Lower: one step of a runbook → a Program (maps, structs, probe functions, attach plan).

Every decision about the generated C is made here, in Python; the template only lays the
pieces out. Aggregations live in per-CPU hash maps (no atomics on the hot path), predicates
run before any map lookup, and every way data can be lost (full maps, failed stack ids,
ring-buffer overflow, begins without an end) is counted in a map the runner reads.
"""

from __future__ import annotations

from typing import Any

from bpfrun.compile.cexpr import CompileError
from bpfrun.compile.lower_span import SpanLowering
from bpfrun.compile.program import (
    LOST_KINDS,
    STACK_LOST,
    STACK_NONE,
    STACK_STORAGE,
    AggPlan,
    AttachPlan,
    EventPlan,
    KeyField,
    Program,
)
from bpfrun.frontend.model import Probe, Step
from bpfrun.kernel.tracefs import Kernel


class Lowerer(SpanLowering):
    """Probes (with their aggregations and events) and the span of one step."""

    def probe(self, probe: Probe) -> None:
        res = self.resolve(probe.candidates, probe.loc)
        if res is None:
            return
        if res.ref.kind == "interval":
            # A user-space tick: the runner snapshots this step's aggregations each period.
            if probe.where or probe.aggregate or probe.emit:
                self.error("an interval probe runs in user space: it takes no where, "
                           "aggregate or emit (it records the step's aggregations over time)",
                           probe.loc)
            unit, n = res.ref.parts
            self.prog.interval = int(n) * (1.0 if unit == "s" else 0.001)
            return
        scope = self.scope(res)
        guard = self.guard(probe.where, scope, res.ref.canonical)
        fn = self.function_for(res)
        if guard is None:
            return  # the predicate folded to false: the probe can never contribute
        body = list(guard)
        if self.prog.stop_after:
            body.append("bpfrun_hit();")
        for agg in probe.aggregate:
            body += self.aggregation(agg, scope)
        if probe.emit:
            body += self.events(probe, res, scope)
        self.add_handler(fn, res, f"{res.ref.canonical} (runbook {probe.loc})", body)

    def lower(self) -> Program:
        if self.step.span is not None:
            try:
                self.span()
            except CompileError as e:
                self.error(str(e), self.step.span.loc, e.hint)
        for probe in self.step.probes:
            self.probe(probe)
        self.prog.structs[:0] = list(self.tp_structs.values())
        return self.prog


def lower_step(step: Step, consts: dict[str, Any], kernel: Kernel, substitute: Any,
               sources: dict[str, str], require_probes: bool = True) -> Program:
    """Step → Program. Raises ValidationError (all problems), MachineError (no usable probe,
    unless `require_probes` is off, as for `compile`), or cexpr.NullInput (an earlier step's
    value it needs is null)."""
    lowerer = Lowerer(step, consts, kernel, substitute, require_probes)
    prog = lowerer.lower()
    lowerer.diags.raise_if_any(sources)
    return prog


__all__ = ["AggPlan", "AttachPlan", "EventPlan", "KeyField", "LOST_KINDS", "Program",
           "STACK_LOST", "STACK_NONE", "STACK_STORAGE", "lower_step"]
