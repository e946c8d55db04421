"""The `selftest:` section of a runbook as typed, frozen model, built from the loaded Document.

A self-test names a workload, param values for the test run and what must hold afterwards
(`expect`). Every part keeps where it was written, so that the checks report an expectation
naming something the runbook does not have at its file:line:col, like any other problem.
The document has already passed the JSON Schema, so shapes are trusted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bpfrun.errors import Loc
from bpfrun.frontend.loader import Document, KeyPath

STEP_STATUSES = ("ran", "skipped", "failed")
WORKLOAD_PID = "workload.pid"  # the one name a selftest param's `${{ }}` can use
TEMPLATE = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True)
class Ref:
    """`step.name` in an expectation: a threshold, capture, aggregation or emitting probe."""

    step: str
    name: str
    loc: Loc

    def __str__(self) -> str:
        return f"{self.step}.{self.name}"


@dataclass(frozen=True)
class CaptureExpectation:
    """`captures: {step.capture: value}`: the capture must show as `value` does."""

    ref: Ref
    value: Any  # a YAML scalar; compared as result.json displays it
    value_loc: Loc


@dataclass(frozen=True)
class StatusExpectation:
    """`steps: {step: ran|skipped|failed}`."""

    step: str
    status: str
    loc: Loc  # of the step id


@dataclass(frozen=True)
class RowsExpectation:
    """`rows: {step.aggregation: {min: N}}`: at least N rows (or emitted events)."""

    ref: Ref
    min: int
    value_loc: Loc


@dataclass(frozen=True)
class Expect:
    fired: tuple[Ref, ...] = ()
    not_fired: tuple[Ref, ...] = ()
    captures: tuple[CaptureExpectation, ...] = ()
    steps: tuple[StatusExpectation, ...] = ()
    rows: tuple[RowsExpectation, ...] = ()

    def status_of(self, step_id: str) -> str | None:
        return next((s.status for s in self.steps if s.step == step_id), None)


@dataclass(frozen=True)
class SelftestParam:
    """A param value for the test run; strings may hold `${{ workload.pid }}`."""

    name: str
    value: Any  # a YAML scalar
    loc: Loc  # of the name
    value_loc: Loc

    def templates(self) -> list[str]:
        """The expressions inside the value's `${{ }}`, as written."""
        return TEMPLATE.findall(self.value) if isinstance(self.value, str) else []

    def for_workload(self, pid: int) -> Any:
        """The value with `${{ workload.pid }}` replaced by the workload's pid."""
        return TEMPLATE.sub(str(pid), self.value) if isinstance(self.value, str) else self.value


@dataclass(frozen=True)
class Workload:
    """The command started before the steps; argv[0] relative to the repository root."""

    argv: tuple[str, ...]
    loc: Loc


@dataclass(frozen=True)
class Timeout:
    """How long the whole test may take, as written (a duration such as 60s)."""

    text: str
    loc: Loc


@dataclass(frozen=True)
class Selftest:
    workload: Workload
    params: tuple[SelftestParam, ...]
    expect: Expect
    timeout: Timeout | None
    note: str | None  # e.g. what this machine cannot exercise; shown with the result
    loc: Loc  # of the `selftest:` key

    def param_values(self, pid: int) -> dict[str, Any]:
        """The params of the test run, for a workload whose pid is `pid`."""
        return {p.name: p.for_workload(pid) for p in self.params}


def build_selftest(doc: Document) -> Selftest | None:
    """The runbook's `selftest:` section, or None when it has none."""
    data = doc.data.get("selftest")
    if not data:
        return None
    base: KeyPath = ("selftest",)
    params = tuple(
        SelftestParam(name, value, doc.key_loc((*base, "params", name)),
                      doc.loc((*base, "params", name)))
        for name, value in (data.get("params") or {}).items())
    timeout = data.get("timeout")
    return Selftest(
        workload=Workload(tuple(str(a) for a in data["workload"]), doc.loc((*base, "workload"))),
        params=params,
        expect=_expect(doc, data.get("expect") or {}, (*base, "expect")),
        timeout=Timeout(str(timeout), doc.loc((*base, "timeout"))) if timeout else None,
        note=data.get("note"),
        loc=doc.key_loc(base))


def _expect(doc: Document, data: dict[str, Any], base: KeyPath) -> Expect:
    def listed(kind: str) -> tuple[Ref, ...]:
        return tuple(_ref(str(text), doc.loc((*base, kind, i)))
                     for i, text in enumerate(data.get(kind) or []))

    def keyed(kind: str) -> list[tuple[str, Any, Loc, Loc]]:
        return [(str(key), value, doc.key_loc((*base, kind, key)), doc.loc((*base, kind, key)))
                for key, value in (data.get(kind) or {}).items()]

    return Expect(
        fired=listed("fired"), not_fired=listed("not_fired"),
        captures=tuple(CaptureExpectation(_ref(key, loc), value, vloc)
                       for key, value, loc, vloc in keyed("captures")),
        steps=tuple(StatusExpectation(key, str(value), loc)
                    for key, value, loc, _ in keyed("steps")),
        rows=tuple(RowsExpectation(_ref(key, loc), int(value["min"]), vloc)
                   for key, value, loc, vloc in keyed("rows")))


def _ref(text: str, loc: Loc) -> Ref:
    step, _, name = text.partition(".")
    return Ref(step, name, loc)
