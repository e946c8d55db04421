"""Names for the cgroups a run saw: the ids under a `cgroup` key of any aggregation or event
are named by the path conventions (bpfrun.kernel.cgroups) and the container runtimes'
metadata (bpfrun.kernel.containers) from a walk of the tree taken during the run, so a
cgroup gone by the end keeps the name it had; the names and the run's target go on the
result's Host (cgroup ids mean something only on their host)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bpfrun.compile.program import CgroupFilter, Program
from bpfrun.errors import MachineError
from bpfrun.kernel.cgroups import CgroupNames, cgroup_id, unified_root
from bpfrun.report.cgroupnames import holds_cgroup
from bpfrun.result import Host, StepResult

CGROUP_KEY = "cgroup"


def keys_cgroups(prog: Program) -> bool:
    """The program records a `cgroup` (or task_cgroup()) key or event field, to be named."""
    return any(holds_cgroup(f.expr) for a in prog.aggs for f in a.keys) or \
        any(holds_cgroup(f.expr) for e in prog.events for f in e.fields)


def cgroup_ids(steps: Iterable[StepResult]) -> set[int]:
    ids: set[int] = set()
    for step in steps:
        rows: list[Mapping[str, Any]] = [r.key for a in step.aggregations.values()
                                         for r in a.rows]
        rows += [r for e in step.events for r in e.rows]
        ids.update(v for r in rows for k, v in r.items()
                   if holds_cgroup(k) and isinstance(v, int) and not isinstance(v, bool)
                   and v > 0)  # task_cgroup()'s 0: not known, not a cgroup
    return ids


def target_json(target: CgroupFilter) -> dict[str, Any]:
    return {"kind": target.kind, "asked": target.asked, "path": target.path,
            "id": target.id, "label": target.label}


def named_host(host: Host, steps: Iterable[StepResult], names: CgroupNames | None,
               target: CgroupFilter | None) -> Host:
    """`host` with the run's target and the names of the cgroups its results hold."""
    steps = list(steps)
    ids = cgroup_ids(steps) if names is not None else set()
    return replace(host, target=target_json(target) if target is not None else None,
                   cgroups={str(i): names.name(i) for i in sorted(ids)} if names else {})


def target_gone(target: CgroupFilter | None, step_id: str) -> str | None:
    """Why the run's target no longer sees its tasks, when its cgroup was removed (or made
    anew under the same name: a new id, which the compiled filter does not match)."""
    if target is None or target.level == 0:
        return None
    try:
        now = cgroup_id(unified_root() / target.path)
    except (OSError, MachineError):
        now = None
    if now == target.id:
        return None
    how = "was removed" if now is None else f"was made anew (cgroup id {target.id} → {now})"
    return (f"the target {target.label} {how} by the end of step {step_id}: its tasks are "
            "seen only until then")
