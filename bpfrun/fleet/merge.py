"""Many hosts' results of one runbook → one fleet result, shaped as a run's result.json.

Its steps hold the hosts' aggregations merged (bpfrun.fleet.aggregate), events with a `host`
field, counts of losses added; its findings are every host's, each message led by the host;
its `hosts` section says which hosts ran, fired, were clean, failed or were interrupted,
which of the inventory are missing, and which are outliers. Its exit code is the worst of the
hosts', or at least 3 when fewer hosts ran than `min_coverage` asks. Hosts are taken sorted by
name, so the order of the inputs changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bpfrun.errors import EXIT_MACHINE, UsageError
from bpfrun.fleet.inputs import HostRun
from bpfrun.fleet.outliers import Outlier, find_outliers
from bpfrun.fleet.steps import merge_steps
from bpfrun.report.flamegraph import fold_aggregation, is_stack_aggregation
from bpfrun.report.markdown import md_escape
from bpfrun.result import Finding, Host, RunResult, RunStatus


@dataclass(frozen=True)
class Fleet:
    """A merged result and the stacks of its flame graphs ("<step>.<aggregation>" → folded)."""

    result: RunResult
    stacks: dict[str, dict[str, int]]
    outliers: tuple[Outlier, ...]


def ran(run: RunResult) -> bool:
    return run.status != "failed" and not run.interrupted


def merge_hosts(hosts: Sequence[HostRun], expected: Sequence[str] | None = None,
                min_coverage: float = 1.0) -> Fleet:
    """The fleet result of `hosts`; UsageError when there are none or their runbooks differ."""
    if not hosts:
        raise UsageError("nothing to merge", hint="give result.json files or report folders")
    hosts = sorted(hosts, key=lambda h: (h.host, h.source))
    names = sorted({h.run.runbook.name for h in hosts})
    if len(names) > 1:
        raise UsageError("cannot merge results of different runbooks: " + ", ".join(
            f"{n} ({', '.join(h.host for h in hosts if h.run.runbook.name == n)})"
            for n in names), hint="merge the results of one runbook at a time")
    present = {h.host for h in hosts}
    missing = sorted(set(expected or ()) - present)
    wanted = len(set(expected)) if expected else len(hosts)
    usable = sum(1 for h in hosts if ran(h.run) and (not expected or h.host in expected))
    coverage = round(usable / wanted, 4) if wanted else 0.0
    # A failed run's steps that ran are data like any other; an interrupted one's cover less time.
    outliers = find_outliers([(h.host, h.run) for h in hosts if not h.run.interrupted])
    summary = {
        "coverage": coverage, "min_coverage": min_coverage,
        "expected": wanted if expected else None, "missing": missing,
        "members": [_member(h) for h in _worst_first(hosts)],
        "outliers": [o.to_json() for o in outliers],
    }
    exit_code = max(h.run.exit_code for h in hosts)
    short = coverage < min_coverage
    if short:
        exit_code = max(exit_code, EXIT_MACHINE)
    status: RunStatus = "failed" if exit_code >= EXIT_MACHINE else \
        "fired" if exit_code else "clean"
    result = RunResult(
        hosts[0].run.runbook, _fleet_host(hosts), _joined(h.run.bpfrun_version for h in hosts),
        min(h.run.started for h in hosts), max(h.run.finished for h in hosts),
        _params([h.run.params for h in hosts]), status, exit_code, _findings(hosts),
        merge_steps([(h.host, h.run) for h in hosts]),
        _error(hosts, missing, coverage, min_coverage) if status == "failed" else None,
        any(h.run.interrupted for h in hosts), None, summary)
    return Fleet(result, _stacks(hosts), tuple(outliers))


_SEVERITY = {"failed": 0, "fired": 1, "clean": 2}


def _worst_first(hosts: Sequence[HostRun]) -> list[HostRun]:
    return sorted(hosts, key=lambda h: (_SEVERITY[h.run.status], -h.run.exit_code,
                                        -len(h.run.findings), h.host))


def _member(h: HostRun) -> dict[str, Any]:
    run = h.run
    return {"host": h.host, "source": h.source, "status": run.status,
            "exit_code": run.exit_code, "interrupted": run.interrupted, "error": run.error,
            "kernel": run.host.kernel,
            "findings": [f.message for f in run.findings]}


def _fleet_host(hosts: Sequence[HostRun]) -> Host:
    return Host(f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}",
                _joined(h.run.host.kernel for h in hosts))


def _joined(values: Any) -> str:
    return ", ".join(sorted({str(v) for v in values if v}))


def _params(all_params: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Each param's value, or its values joined by ' | ' where hosts ran with different ones."""
    names = list(dict.fromkeys(k for p in all_params for k in p))
    return {k: " | ".join(sorted({p.get(k, "") for p in all_params})) for k in names}


def _findings(hosts: Sequence[HostRun]) -> tuple[Finding, ...]:
    out = []
    for h in _worst_first(hosts):
        for f in h.run.findings:
            markdown = f.message_markdown if f.message_markdown is not None else \
                md_escape(f.message)
            out.append(Finding(f.step, f.threshold, f.severity, f"{h.host}: {f.message}",
                               f"{md_escape(h.host)}: {markdown}"))
    return tuple(out)


def _error(hosts: Sequence[HostRun], missing: Sequence[str], coverage: float,
           min_coverage: float) -> str:
    parts = [f"{h.host}: {'interrupted' if h.run.interrupted else h.run.error or 'failed'}"
             for h in hosts if not ran(h.run)]
    if missing:
        parts.append("missing: " + ", ".join(missing))
    if coverage < min_coverage:
        parts.insert(0, f"coverage {coverage:.0%} is below {min_coverage:.0%}")
    return "; ".join(parts) or "a host's run failed"


def _stacks(hosts: Sequence[HostRun]) -> dict[str, dict[str, int]]:
    """Every host's stacks added: from its folded files, else folded from its rows."""
    out: dict[str, dict[str, int]] = {}
    for h in hosts:
        for step in h.run.steps:
            for agg_id, agg in step.aggregations.items():
                if not is_stack_aggregation(agg):
                    continue
                name = f"{step.id}.{agg_id}"
                stacks = h.stacks.get(name) or fold_aggregation(agg)
                merged = out.setdefault(name, {})
                for stack, weight in stacks.items():
                    merged[stack] = merged.get(stack, 0) + weight
    return out
