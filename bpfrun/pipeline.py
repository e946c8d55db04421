"""The compiler pipeline in order: load → schema → model → check → (resolve → lower → emit).

Each stage raises ValidationError with every problem it found; a later stage only runs on
what the earlier ones accepted, so its messages are never noise caused by an earlier error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpfrun import emit
from bpfrun.cexpr import NullInput, Unbound
from bpfrun.check import check_runbook
from bpfrun.errors import Diagnostic, MachineError, UsageError, ValidationError
from bpfrun.evaluate import EvalError, render_template
from bpfrun.kernel import Kernel
from bpfrun.loader import load_file
from bpfrun.lower import Program, lower_step
from bpfrun.model import Runbook, Step, Template, build_runbook
from bpfrun.paths import runbooks_dir
from bpfrun.results import HIST_STATS
from bpfrun.schema import validate_schema


def shipped_runbooks() -> list[Path]:
    return sorted(runbooks_dir().glob("*.yaml"))


def find_runbook(name_or_path: str) -> Path:
    """A path, or the name of a shipped runbook."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if "/" not in name_or_path:
        shipped = runbooks_dir() / f"{name_or_path}.yaml"
        if shipped.is_file():
            return shipped
    names = ", ".join(p.stem for p in shipped_runbooks())
    raise UsageError(f"no runbook '{name_or_path}': not a file, nor a shipped runbook",
                     f"shipped runbooks: {names} (bpfrun list)")


def load_runbook(path: str | Path) -> Runbook:
    doc = load_file(path)
    problems = validate_schema(doc)
    if problems:
        raise ValidationError(diagnostics=problems, sources={doc.path: doc.text})
    runbook = build_runbook(doc)
    check_runbook(runbook)
    return runbook


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
                 require_probes: bool = True) -> Compiled:
    """Lower and emit one step with params and earlier steps' values bound as constants.

    Raises ValidationError, MachineError (no usable probe here, when `require_probes`) or
    NullInput.
    """
    names = names_for(params, step_values)
    consts = {"params": params, "steps": step_values}
    program = lower_step(step, consts, kernel, lambda t: substitute(t, names, runbook),
                         {runbook.path: runbook.source}, require_probes)
    return Compiled(program, emit.render(program, runbook.name, runbook.path))


def placeholder_values(runbook: Runbook, upto: Step) -> dict[str, dict[str, Any]]:
    """Earlier steps' names bound to Unbound: compile a follow-up step ahead of a run."""
    out: dict[str, dict[str, Any]] = {}
    for step in runbook.steps:
        if step is upto:
            break
        names = [t.id for t in step.thresholds] + [c for c, _ in step.captures]
        names += [f"{a.id}.{stat}" for a in step.aggregations if not a.by for stat in AGG_STATS]
        out[step.id] = {n: Unbound(f"steps.{step.id}.{n}") for n in names}
    return out


def check_against_kernel(runbook: Runbook, params: dict[str, Any],
                         kernel: Kernel, strict: bool = False) -> list[str]:
    """Lower every step against this kernel: type errors raise; returns notes on what could
    not be checked (kernel unreadable, probes missing here). With `strict` (before a run), a
    step with no usable probe raises MachineError."""
    notes: list[str] = []
    problems: list[Diagnostic] = []
    if not kernel.readable():
        notes.append("tracefs is not readable (run as root, or mount tracefs): tracepoint "
                     "fields, types and probe existence were not checked")
    for step in runbook.steps:
        try:
            compiled = compile_step(runbook, step, params,
                                    placeholder_values(runbook, step), kernel,
                                    require_probes=strict)
            notes += [f"step {step.id}: {n}" for n in compiled.program.unchecked
                      if kernel.readable()]
        except ValidationError as e:
            problems += e.diagnostics
        except MachineError as e:
            if strict:
                raise
            notes.append(f"step {step.id}: {e.message}")
        except NullInput:
            pass
    if problems:
        raise ValidationError(diagnostics=problems, sources={runbook.path: runbook.source})
    return notes
