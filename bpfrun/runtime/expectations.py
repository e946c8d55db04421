"""Compare a run's result with a self-test's `expect`: every mismatch is one readable line.

A line says what was expected and what happened instead (the threshold's message, the
capture's value, why a step was skipped), so that a contributor can act on it without opening
the report. A step that failed without the selftest expecting it is always a mismatch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bpfrun.expr.evaluate import display
from bpfrun.frontend.selftest import (
    CaptureExpectation,
    Expect,
    Ref,
    RowsExpectation,
    StatusExpectation,
)
from bpfrun.result import AggregationResult, EventsResult, RunResult, StepResult

Steps = Mapping[str, StepResult]  # the result's steps by id


def _q(value: Any) -> str:
    """A value as result.json shows it, quoted: YAML 5 and "5" both compare as "5"."""
    return "null" if value is None else json.dumps(display(value), ensure_ascii=False)


def _not_ran(step: StepResult) -> str:
    why = f" ({step.reason})" if step.reason else ""
    return f"step {step.id} {'failed' if step.status == 'failed' else 'was skipped'}{why}"


def _no_step(label: str, step_id: str) -> str:
    return f"{label}: the result has no step '{step_id}'"


def compare(expect: Expect, result: RunResult) -> list[str]:
    """Every way `result` differs from `expect`, one readable line each."""
    steps = {s.id: s for s in result.steps}
    return [*_fired(expect.fired, steps), *_not_fired(expect.not_fired, steps),
            *_captures(expect.captures, steps), *_statuses(expect.steps, steps),
            *_rows(expect.rows, steps), *_unexpected_failures(expect, steps)]


def _fired(refs: Sequence[Ref], steps: Steps) -> Iterator[str]:
    for ref in refs:
        step = steps.get(ref.step)
        if step is None:
            yield _no_step(str(ref), ref.step)
            continue
        t = step.thresholds.get(ref.name)
        if step.status != "ran":
            why = _not_ran(step)
        elif t is None:
            why = f"step {step.id} has no threshold '{ref.name}'"
        elif t.fired is None:
            why = f"it had no data ({t.message})"
        elif not t.fired:
            why = f"it did not fire ({t.message})"
        else:
            continue
        yield f"{ref}: expected fired, but {why}"


def _not_fired(refs: Sequence[Ref], steps: Steps) -> Iterator[str]:
    for ref in refs:
        step = steps.get(ref.step)
        if step is None:
            yield _no_step(str(ref), ref.step)
            continue
        t = step.thresholds.get(ref.name)
        if t is not None and t.fired:
            yield f"{ref}: expected not to fire, but it fired ({t.message})"


def _captures(expected: Sequence[CaptureExpectation], steps: Steps) -> Iterator[str]:
    for capture in expected:
        label, want, step = f"captures {capture.ref}", capture.value, steps.get(capture.ref.step)
        if step is None:
            yield _no_step(label, capture.ref.step)
            continue
        if step.status != "ran":
            yield f"{label}: expected {_q(want)}, but {_not_ran(step)}"
            continue
        got = step.captures.get(capture.ref.name)
        if capture.ref.name not in step.captures or display(got) != display(want) \
                or (got is None) != (want is None):
            yield f"{label}: expected {_q(want)}, got {_q(got)}"


def _statuses(expected: Sequence[StatusExpectation], steps: Steps) -> Iterator[str]:
    for status in expected:
        step = steps.get(status.step)
        if step is None:
            yield _no_step(f"steps {status.step}", status.step)
        elif step.status != status.status:
            reason = f" ({step.reason})" if step.reason else ""
            yield f"steps {status.step}: expected {status.status}, got {step.status}{reason}"


def _rows(expected: Sequence[RowsExpectation], steps: Steps) -> Iterator[str]:
    for rows in expected:
        label, step = f"rows {rows.ref}", steps.get(rows.ref.step)
        if step is None:
            yield _no_step(label, rows.ref.step)
            continue
        table = _table(step, rows.ref.name)
        n = len(table.rows) if table else 0
        if n < rows.min:
            why = "" if step.status == "ran" else f": {_not_ran(step)}"
            yield (f"{label}: expected at least {rows.min} row{'s' if rows.min != 1 else ''}, "
                   f"got {n}{why}")


def _table(step: StepResult, name: str) -> AggregationResult | EventsResult | None:
    """The aggregation, or else the emitting probe's events, that `name` is in the step."""
    return step.aggregations.get(name) or next((e for e in step.events if e.id == name), None)


def _unexpected_failures(expect: Expect, steps: Steps) -> Iterator[str]:
    """A failure nobody expected is never a pass."""
    for step in steps.values():
        if step.status == "failed" and expect.status_of(step.id) is None:
            yield f"steps {step.id}: failed unexpectedly ({step.reason})"


__all__ = ["compare"]
