"""A run as a Nagios/Icinga plugin's output: one status line with perfdata, and its code.

    BPFRUN CRITICAL - runq-latency: 1 finding: p99 run-queue wait 12ms … | 'fired_critical'=1;;;0 …

The plugin convention's codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A fired threshold
gives its severity's code (`critical` 2, `warning` 1, `info` stays OK, its message still
shown), the worst one winning; a run that could not finish (a step failed, interrupted) and
nothing critical or warning found is UNKNOWN, and so is a run that never started (an invalid
runbook, a machine that cannot run it, another run holding the lock): the check could not
say. Perfdata (`'label'=value[UOM];warn;crit;min;max`) gives the fired thresholds by
severity, each step's duration, and each unkeyed aggregation's numbers (a histogram's count,
p50, p90 and p99), in the plugin UOMs: s, ms, us, B, or none.
"""

from __future__ import annotations

from bpfrun.result import HistValue, RunResult, StatsValue
from bpfrun.units import HIST_UNITS

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_SEVERITY_CODE = {"critical": CRITICAL, "warning": WARNING, "info": OK}
_PLUGIN_UOMS = {"s", "ms", "us"}
MAX_TEXT = 300


def plugin_state(result: RunResult) -> int:
    """The plugin code of a run that produced a result."""
    worst = max((_SEVERITY_CODE.get(f.severity, WARNING) for f in result.findings), default=OK)
    if worst in (CRITICAL, WARNING):
        return worst
    if result.status == "failed" or result.interrupted:
        return UNKNOWN
    return OK


def nagios_output(result: RunResult) -> tuple[int, str]:
    """(plugin code, the status line) of a run."""
    state = plugin_state(result)
    name = result.runbook.name
    if result.findings:
        first = max(result.findings, key=lambda f: _SEVERITY_CODE.get(f.severity, WARNING))
        n = len(result.findings)
        more = f" (+{n - 1} more)" if n > 1 else ""
        text = f"{name}: {n} finding(s): [{first.severity}] {first.message}{more}"
    elif state == UNKNOWN:
        text = f"{name}: the run did not finish: {result.error or 'interrupted'}"
    else:
        text = f"{name}: no threshold fired"
    return state, _line(state, text, _perfdata(result))


def nagios_unknown(runbook: str, reason: str) -> tuple[int, str]:
    """(UNKNOWN, the status line) of a run that never started."""
    return UNKNOWN, _line(UNKNOWN, f"{runbook}: {reason}", [])


def _line(state: int, text: str, perf: list[str]) -> str:
    # One line, and no `|` in the text: the plugin format splits text from perfdata there.
    clean = " ".join(text.replace("|", "/").split())
    if len(clean) > MAX_TEXT:
        clean = clean[: MAX_TEXT - 1] + "…"
    out = f"BPFRUN {STATE_NAMES[state]} - {clean}"
    return f"{out} | {' '.join(perf)}" if perf else out


def _perfdata(result: RunResult) -> list[str]:
    out = []
    for severity in ("critical", "warning", "info"):
        fired = sum(1 for f in result.findings if f.severity == severity)
        out.append(perf_item(f"fired_{severity}", fired, "", minimum=0))
    for step in result.steps:
        if step.status == "skipped":
            continue
        out.append(perf_item(f"{step.id}.seconds", step.seconds, "s", minimum=0))
        for name, agg in step.aggregations.items():
            if agg.keys or not agg.rows:
                continue
            out += _aggregation_perf(f"{step.id}.{name}", agg.kind, agg.unit, agg.rows[0].value)
    return out


def _aggregation_perf(label: str, kind: str, unit: str | None, value: object) -> list[str]:
    uom, scale = _uom(unit)
    if isinstance(value, HistValue):
        return [perf_item(f"{label}.count", value.count, "", minimum=0)] + [
            perf_item(f"{label}.{p}", v * scale, uom)
            for p in ("p50", "p90", "p99") if (v := getattr(value, p)) is not None]
    if isinstance(value, StatsValue):
        return [perf_item(f"{label}.count", value.count, "", minimum=0)] + [
            perf_item(f"{label}.{s}", v * scale, uom)
            for s in ("avg", "max") if (v := getattr(value, s)) is not None]
    if value is None or not isinstance(value, int | float):
        return []
    return [perf_item(label, value if kind == "count" else value * scale,
                      "" if kind == "count" else uom)]


def _uom(unit: str | None) -> tuple[str, float]:
    """A plugin UOM for an aggregation's unit and the factor to it: s/ms/us as they are,
    ns as us, sizes as B."""
    if unit in _PLUGIN_UOMS:
        return unit, 1.0
    if unit == "ns":
        return "us", 1e-3
    if unit in HIST_UNITS:
        return "B", float(HIST_UNITS[unit])
    return "", 1.0


def perf_item(label: str, value: float, uom: str = "", minimum: float | None = None) -> str:
    """`'label'=value[UOM];warn;crit;min;max`, warn and crit empty (bpfrun's thresholds are
    expressions, not ranges), trailing empty fields dropped."""
    quoted = "'" + label.replace("=", "_").replace("'", "''") + "'"
    text = f"{quoted}={_plain(value)}{uom}"
    return text + (f";;;{_plain(minimum)}" if minimum is not None else "")


def _plain(value: float) -> str:
    """A number without an exponent (the plugin format has none)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
