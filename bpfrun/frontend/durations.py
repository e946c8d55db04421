"""Step durations: checked ahead of a run, as the run will read them.

A literal duration is checked with the runbook's names; a `${{ }}` one with param values
(a run's, or placeholders when validating), so that `validate` refuses what `run` would:
no unit, zero, past 64 bits of nanoseconds, a template that is no duration. A duration that
needs an earlier step's results is known only during the run.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from bpfrun.errors import Diagnostic
from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.expr.parser import TemplateExpr, walk
from bpfrun.frontend.model import Runbook, Template
from bpfrun.units import parse_duration


def duration_problem(text: str) -> str | None:
    """Why `text` is no step duration, or None."""
    try:
        ns = parse_duration(text)
    except ValueError as e:
        return str(e)
    return "a step must last longer than 0s" if ns == 0 else None


def step_duration_problems(runbook: Runbook, params: dict[str, Any],
                           only: Collection[str]) -> list[Diagnostic]:
    """Every step duration (of the steps named in `only`) that is no duration once `params`
    are substituted."""
    out: list[Diagnostic] = []
    for step in runbook.steps:
        if step.id not in only:
            continue
        t = step.duration
        if t.is_literal or _uses_steps(t):
            continue  # literals: check.py; earlier steps' values: known during the run
        try:
            text = render_template(t.parts, {"params": params, "steps": {}})
        except EvalError as e:
            out.append(Diagnostic(f"step duration: {e}", t.at(e.node)))
            continue
        problem = duration_problem(text)
        if problem:
            out.append(Diagnostic(f"step duration {text!r} (from {t.text!r}): {problem}",
                                  t.loc))
    return out


def _uses_steps(t: Template) -> bool:
    for part in t.parts:
        if isinstance(part, TemplateExpr):
            for node in walk(part.node):
                if getattr(node, "name", None) == "steps":
                    return True
    return False
