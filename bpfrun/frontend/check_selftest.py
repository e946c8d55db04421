"""Check the `selftest:` section against the runbook it tests, before anything runs.

Expectations must name steps, thresholds, captures and aggregations the runbook has; params
must be the runbook's own, with values of their type, and may only use `${{ workload.pid }}`;
the timeout must be a plain duration. Each problem is a Diagnostic at the offending entry, so
`bpfrun validate` reports a bad expectation together with every other problem of the runbook.
"""

from __future__ import annotations

from bpfrun.errors import Diagnostics, Loc
from bpfrun.frontend.model import Runbook, Step
from bpfrun.frontend.params import check_value
from bpfrun.frontend.selftest import TEMPLATE, WORKLOAD_PID, Ref, Selftest

# A stand-in pid for `${{ workload.pid }}` while checking a value's type: any valid pid does.
_SOME_PID = 1


def check_selftest(runbook: Runbook, diags: Diagnostics) -> None:
    """Add a diagnostic for every problem of the runbook's self-test, if it has one."""
    selftest = runbook.selftest
    if selftest is None:
        return
    _check_params(runbook, selftest, diags)
    if selftest.timeout and TEMPLATE.search(selftest.timeout.text):
        diags.error("the selftest timeout must be a plain duration such as 60s",
                    selftest.timeout.loc)
    expect = selftest.expect
    refs: list[tuple[str, Ref | str, Loc]] = [
        *(("fired", r, r.loc) for r in expect.fired),
        *(("not_fired", r, r.loc) for r in expect.not_fired),
        *(("captures", c.ref, c.ref.loc) for c in expect.captures),
        *(("steps", s.step, s.loc) for s in expect.steps),
        *(("rows", r.ref, r.ref.loc) for r in expect.rows)]
    for kind, ref, loc in refs:
        problem = _ref_problem(runbook, kind, ref)
        if problem:
            diags.error(f"selftest expect {kind}: {problem[0]}", loc, problem[1])


def _check_params(runbook: Runbook, selftest: Selftest, diags: Diagnostics) -> None:
    given = {p.name for p in selftest.params}
    for p in selftest.params:
        param = runbook.param(p.name)
        if param is None:
            known = ", ".join(q.name for q in runbook.params) or "none"
            diags.error(f"selftest param '{p.name}' is not a param of {runbook.name}", p.loc,
                        f"params: {known}")
        bad = [e for e in p.templates() if e != WORKLOAD_PID]
        for expr in bad:
            diags.error(f"selftest params can only use ${{{{ {WORKLOAD_PID} }}}}, not '{expr}'",
                        p.value_loc)
        if param is not None and not bad:
            try:
                check_value(param, p.for_workload(_SOME_PID))
            except ValueError as e:
                diags.error(f"selftest param '{p.name}' ({param.type}): {e}", p.value_loc)
    for param in runbook.params:
        if not param.has_default and param.name not in given:
            diags.error(f"the selftest does not set param '{param.name}', which has no default",
                        selftest.loc, f"add it to the selftest's params: {{{param.name}: ...}}")


def _ref_problem(runbook: Runbook, kind: str, ref: Ref | str) -> tuple[str, str] | None:
    """What is wrong with an expectation's reference, and the names it could use instead."""
    step_id = ref if isinstance(ref, str) else ref.step
    step = runbook.step(step_id)
    if step is None:
        return (f"no step '{step_id}'", "steps: " + ", ".join(s.id for s in runbook.steps))
    if isinstance(ref, str):
        return None
    what, names = _names(step, kind)
    if ref.name not in names:
        return (f"step {step_id} has no {what} '{ref.name}'",
                f"its {what}s: " + (", ".join(names) or "none"))
    return None


def _names(step: Step, kind: str) -> tuple[str, list[str]]:
    """What an expectation of `kind` names in a step, and the step's names of that sort."""
    if kind == "captures":
        return "capture", [c for c, _ in step.captures]
    if kind == "rows":  # an emitting probe's events are rows too
        return "aggregation", ([a.id for a in step.aggregations]
                               + [p.id for p in step.probes if p.id and p.emit])
    return "threshold", [t.id for t in step.thresholds]
