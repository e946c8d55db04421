"""Compile a loaded runbook's steps: bind params and earlier steps' values, resolve the probes
against the kernel, lower, emit; and check a whole runbook against a kernel ahead of a run
(`validate`, `compile`, `run`).

The passes of one step, in order: resolution (every probe and fallback looked up at once;
problems collected with their places), lowering (given the resolved probes and the kernel's
features, collecting every type error), emit. A probe missing here is decided on last, so a
runbook's own errors are always reported first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bpfrun.compile import emit
from bpfrun.compile.cexpr import NullInput, Unbound
from bpfrun.compile.lower import Program, lower_step
from bpfrun.compile.lower.target import aim, targeted
from bpfrun.compile.program import CgroupFilter
from bpfrun.compile.resolution import StepProbes, resolve_step, unusable
from bpfrun.errors import Diagnostic, ValidationError
from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.frontend.model import HIST_STATS, Runbook, Step, Template
from bpfrun.kernel.tracefs import Kernel


def names_for(params: dict[str, Any], steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"params": params, "steps": steps}


def substitute(template: Template, names: dict[str, Any], runbook: Runbook) -> str:
    if template.is_literal:
        return template.text
    try:
        return render_template(template.parts, names)
    except EvalError as e:
        raise ValidationError(diagnostics=[Diagnostic(str(e), template.at(e.node))],
                              sources={runbook.path: runbook.source}) from None


# The stats of an unkeyed aggregation that later steps can use (investigate.py binds them).
AGG_STATS = (*HIST_STATS, "value")


@dataclass
class Compiled:
    program: Program
    c_text: str


def compile_step(runbook: Runbook, step: Step, params: dict[str, Any],
                 step_values: dict[str, dict[str, Any]], kernel: Kernel,
                 require_probes: bool = True, target: CgroupFilter | None = None) -> Compiled:
    """Resolve, lower and emit one step with params and earlier steps' values bound as
    constants.

    Raises ValidationError, MachineError (no usable probe here, when `require_probes`) or
    NullInput.
    """
    compiled, probes = _compile(runbook, step, params, step_values, kernel, target)
    if require_probes and probes.missing:
        raise unusable(probes.missing)
    return compiled


def _compile(runbook: Runbook, step: Step, params: dict[str, Any],
             step_values: dict[str, dict[str, Any]],
             kernel: Kernel,
             target: CgroupFilter | None = None) -> tuple[Compiled, StepProbes]:
    """The step's C whether or not its probes exist here (a missing one is lowered as first
    written), and its resolved probes."""
    names = names_for(params, step_values)
    consts = {"params": params, "steps": step_values}

    def bind(t: Template) -> str:
        return substitute(t, names, runbook)

    probes = resolve_step(step, kernel, bind, targeted(target))
    program = lower_step(step, probes, consts, kernel.features(), bind,
                         {runbook.path: runbook.source}, target)
    aim(program, target)
    return Compiled(program, emit.render(program, runbook.name, runbook.path)), probes


def placeholder_values(runbook: Runbook, upto: Step) -> dict[str, dict[str, Any]]:
    """Earlier steps' names bound to Unbound: compile a follow-up step ahead of a run.

    Made once per runbook and shared (read the inner mappings, do not change them): called
    for every step, this was quadratic work in Python (issue #13: 1,000 steps took 15 s to
    validate); now only the outer mapping is copied, at C speed."""
    ids, values, index = _runbook_placeholders(runbook)
    n = index.get(id(upto), len(ids))
    return dict(zip(ids[:n], values[:n], strict=True))


_Placeholders = tuple[list[str], list[dict[str, Any]], dict[int, int]]
_PLACEHOLDERS: dict[int, tuple[Runbook, _Placeholders]] = {}  # by id(runbook), kept with it


def _runbook_placeholders(runbook: Runbook) -> _Placeholders:
    cached = _PLACEHOLDERS.get(id(runbook))
    if cached is not None and cached[0] is runbook:
        return cached[1]
    ids: list[str] = []
    values: list[dict[str, Any]] = []
    index: dict[int, int] = {}
    for i, step in enumerate(runbook.steps):
        names = [t.id for t in step.thresholds] + [c for c, _ in step.captures]
        names += [f"{a.id}.{stat}" for a in step.aggregations if not a.by
                  for stat in AGG_STATS]
        ids.append(step.id)
        values.append({n: Unbound(f"steps.{step.id}.{n}") for n in names})
        index.setdefault(id(step), i)
    if len(_PLACEHOLDERS) > 1000:  # a long fuzzing session: start over
        _PLACEHOLDERS.clear()
    _PLACEHOLDERS[id(runbook)] = (runbook, (ids, values, index))
    return ids, values, index


def check_against_kernel(runbook: Runbook, params: dict[str, Any],
                         kernel: Kernel, strict: bool = False,
                         near_misses: bool = False,
                         only: Collection[str] | None = None) -> list[str]:
    """Compile every step against this kernel: the runbook's errors of all steps raise
    together (ValidationError), with `near_misses` (validate) a probe missing here next to
    one that exists among them, as a misspelling; returns notes on what could not be checked
    (kernel unreadable, probes missing here). With `strict` (before a run), probes missing
    here raise MachineError, naming every one of the runbook."""
    notes: list[str] = []
    problems: list[Diagnostic] = []
    missing: list[Diagnostic] = []
    if not kernel.readable():
        notes.append("tracefs is not readable (run as root, or mount tracefs): tracepoint "
                     "fields, types and probe existence were not checked")
    for step in runbook.steps:
        if only is not None and step.id not in only:
            continue  # validate: a step with problems of its own is not lowered
        try:
            compiled, probes = _compile(runbook, step, params,
                                        placeholder_values(runbook, step), kernel)
        except ValidationError as e:  # less what the frontend reported (runbooks.CleanSteps)
            known = getattr(only, "reported", {}).get(step.id, ())
            problems += [d for d in e.diagnostics
                         if d.loc is None or (d.loc.line, d.loc.col) not in known]
            continue
        except NullInput:
            continue
        missing += probes.missing
        if near_misses:  # a probe missing here next to one that exists: a misspelling
            problems += [d for d in probes.missing if "(did you mean " in d.message]
        if kernel.readable():
            notes += [f"step {step.id}: {n}" for n in compiled.program.unchecked]
    if problems:
        raise ValidationError(diagnostics=problems, sources={runbook.path: runbook.source})
    if strict and missing:
        raise unusable(missing)
    return notes
