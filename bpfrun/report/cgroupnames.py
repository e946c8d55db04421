"""The report shows a `cgroup` key or event field by name ("unit checkout.service",
"pod shop/web-7d9f, container nginx", "container 4f1c0ffee2b0 (containerd)" when the
runtime's metadata named nothing), from the names the run took on its host (Host.cgroups);
result.json keeps the raw ids. An id without a name stays a number (results of older runs,
or runs that did not name their cgroups)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bpfrun.result import EventsResult, RunResult, StepResult

CGROUP_KEY = "cgroup"


def holds_cgroup(key: str) -> bool:
    """A key or event field that holds cgroup ids: `cgroup`, or task_cgroup(...) (the
    cgroup of a task that is not the current one)."""
    return key == CGROUP_KEY or key.startswith("task_cgroup(")


def with_cgroup_names(run: RunResult) -> RunResult:
    """`run` with its cgroup ids replaced by their names, for display only."""
    names = run.host.cgroups
    if not names:
        return run
    return replace(run, steps=tuple(_step(s, names) for s in run.steps))


def _named(key: Mapping[str, Any], names: Mapping[str, str]) -> Mapping[str, Any]:
    return {k: names.get(str(v), v) if holds_cgroup(k) and isinstance(v, int) else v
            for k, v in key.items()}


def _step(step: StepResult, names: Mapping[str, str]) -> StepResult:
    aggs = {i: replace(a, rows=tuple(replace(r, key=_named(r.key, names)) for r in a.rows))
            if any(map(holds_cgroup, a.keys)) else a for i, a in step.aggregations.items()}
    events = tuple(_events(e, names) for e in step.events)
    return replace(step, aggregations=aggs, events=events)


def _events(events: EventsResult, names: Mapping[str, str]) -> EventsResult:
    if not any(map(holds_cgroup, events.fields)):
        return events
    return replace(events, rows=tuple(_named(r, names) for r in events.rows))


def target_label(run: RunResult) -> str | None:
    target = run.host.target
    return str(target.get("label")) if target else None
