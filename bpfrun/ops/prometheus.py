"""A run as Prometheus metrics, for node_exporter's textfile collector.

`bpfrun_<runbook>.prom` is replaced atomically (temp file in the same folder, fsync, rename:
the collector never reads half a file) and carries no timestamps (the collector's scrape
time is the sample's). What it holds, every series labelled with `runbook`:

- `bpfrun_last_run_exit_code`, `bpfrun_last_run_status{status}` (1 for this run's status,
  0 for the others), `bpfrun_last_run_timestamp_seconds`, `bpfrun_last_run_duration_seconds`,
  `bpfrun_last_success_timestamp_seconds` (a run that did not fail; kept from the previous
  file when this one failed, absent until one succeeded);
- `bpfrun_step_duration_seconds{step}`;
- `bpfrun_threshold_fired{step,threshold,severity}`: 1 fired, 0 not; absent with no data;
- unkeyed aggregations: `bpfrun_value{step,aggregation,stat,unit}` and histograms as
  `bpfrun_histogram{step,aggregation,unit}` with cumulative `_bucket{le}`, `_sum`, `_count`;
- keyed aggregations: `bpfrun_row{step,aggregation,key,stat,unit}`, the top `TOP_ROWS` rows
  of each, the rest summed (or min'd, max'd) under `key="other"`, so label cardinality stays
  bounded whatever the workload.

Durations are in seconds and sizes in bytes (`unit` says which), as Prometheus expects. A
bucket's `high` is exclusive in result.json and `le` inclusive here: a value equal to a bucket
edge is counted one bucket up, which `histogram_quantile`'s interpolation does not notice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from bpfrun.report.writers import write_atomic
from bpfrun.result import AggregationResult, HistValue, RunResult, StatsValue
from bpfrun.units import HIST_UNITS

TOP_ROWS = 10
PROM_MODE = 0o644  # node_exporter runs as its own user
STATUSES = ("clean", "fired", "failed", "error")
_DURATIONS = {"ns", "us", "ms", "s"}
_SUCCESS = re.compile(r"^bpfrun_last_success_timestamp_seconds\{[^}]*\}\s+(\S+)\s*$", re.M)
Sample = tuple[str, dict[str, str], float]

_HELP = {
    "bpfrun_last_run_exit_code": ("gauge", "Exit code of the last bpfrun run."),
    "bpfrun_last_run_status": ("gauge", "1 for the last run's status, 0 for the others."),
    "bpfrun_last_run_timestamp_seconds": ("gauge", "When the last run finished (Unix time)."),
    "bpfrun_last_run_duration_seconds": ("gauge", "How long the last run took."),
    "bpfrun_last_success_timestamp_seconds": (
        "gauge", "When the last run that did not fail finished (Unix time)."),
    "bpfrun_step_duration_seconds": ("gauge", "How long each step's probes were attached."),
    "bpfrun_threshold_fired": ("gauge", "1 when a threshold fired, 0 when not."),
    "bpfrun_value": ("gauge", "An unkeyed aggregation's value (stat: which number)."),
    "bpfrun_row": ("gauge", "A keyed aggregation's top rows; the rest under key=other."),
    "bpfrun_histogram": ("histogram", "An unkeyed histogram aggregation."),
}


def prom_path(folder: Path, runbook_name: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", runbook_name)
    return folder / f"bpfrun_{name}.prom"


def write_textfile(folder: Path, runbook_name: str, exit_code: int,
                   result: RunResult | None = None, finished: datetime | None = None) -> Path:
    """Replace `folder`'s metrics file for this runbook with this run's; `result` None is a
    run that ended before it produced one (status `error`, at `finished`)."""
    path = prom_path(folder, runbook_name)
    try:
        previous = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        previous = ""
    text = render_metrics(runbook_name, exit_code, result, finished, previous)
    write_atomic(path, text, mode=PROM_MODE)
    return path


def render_metrics(runbook_name: str, exit_code: int, result: RunResult | None,
                   finished: datetime | None, previous: str = "") -> str:
    """The text exposition of one run (see the module docstring)."""
    base = {"runbook": runbook_name}
    samples: list[Sample] = list(_run_samples(base, exit_code, result, finished, previous))
    if result is not None:
        for step in result.steps:
            labels = {**base, "step": step.id}
            if step.status != "skipped":
                samples.append(("bpfrun_step_duration_seconds", labels, step.seconds))
            for name, t in step.thresholds.items():
                if t.fired is not None:
                    samples.append(("bpfrun_threshold_fired", {
                        **labels, "threshold": name, "severity": t.severity}, float(t.fired)))
            for name, agg in step.aggregations.items():
                samples += _aggregation_samples({**labels, "aggregation": name}, agg)
    return _expose(samples)


def _run_samples(base: dict[str, str], exit_code: int, result: RunResult | None,
                 finished: datetime | None, previous: str) -> Iterator[Sample]:
    status = result.status if result is not None else "error"
    yield "bpfrun_last_run_exit_code", base, float(exit_code)
    for s in STATUSES:
        yield "bpfrun_last_run_status", {**base, "status": s}, float(s == status)
    end = _epoch(result.finished) if result is not None else (
        finished.timestamp() if finished is not None else math.nan)
    yield "bpfrun_last_run_timestamp_seconds", base, end
    if result is not None:
        yield "bpfrun_last_run_duration_seconds", base, end - _epoch(result.started)
    ok = result is not None and status != "failed" and not result.interrupted
    last_ok = end if ok else _previous_success(previous)
    if last_ok is not None:
        yield "bpfrun_last_success_timestamp_seconds", base, last_ok


def _previous_success(text: str) -> float | None:
    m = _SUCCESS.search(text)
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _unit(agg_unit: str | None) -> tuple[str, float]:
    """The Prometheus unit label of an aggregation and the factor to it from its own."""
    if agg_unit in _DURATIONS:
        return "seconds", HIST_UNITS[agg_unit] / 1e9
    if agg_unit in HIST_UNITS:
        return "bytes", float(HIST_UNITS[agg_unit])
    return "", 1.0


def _aggregation_samples(labels: dict[str, str], agg: AggregationResult) -> list[Sample]:
    unit, scale = _unit(agg.unit)
    labels = {**labels, "unit": unit}
    if not agg.keys:
        return [s for row in agg.rows[:1] for s in _unkeyed(labels, agg.kind, row.value, scale)]
    rows = [(_key_text(row.key), _stats(agg.kind, row.value)) for row in agg.rows]
    out: list[Sample] = []
    for key, stats in rows[:TOP_ROWS]:
        out += [("bpfrun_row", {**labels, "key": key, "stat": st}, v * _scaled(st, scale))
                for st, v in stats.items() if v is not None]
    rest = [stats for _, stats in rows[TOP_ROWS:]]
    for st, v in _merged(rest).items():
        out.append(("bpfrun_row", {**labels, "key": "other", "stat": st},
                    v * _scaled(st, scale)))
    return out


def _scaled(stat: str, scale: float) -> float:
    return 1.0 if stat == "count" else scale


def _stats(kind: str, value: object) -> dict[str, float | None]:
    """A row's numbers by stat: `count`, `sum`… (a plain number is the stat of its kind)."""
    if isinstance(value, StatsValue):
        return {"count": value.count, "sum": value.sum}
    return {kind: None if value is None else float(value)}  # type: ignore[arg-type]


def _merged(rows: Iterable[dict[str, float | None]]) -> dict[str, float]:
    """The rows past the top merged into one: counts and sums added, the least min and the
    greatest max; averages are not merged (their weights are unknown)."""
    out: dict[str, float] = {}
    pick = {"min": min, "max": max}
    for stats in rows:
        for st, v in stats.items():
            if v is None or st == "avg":
                continue
            out[st] = pick[st](out[st], v) if st in pick and st in out else out.get(st, 0) + v
    return out


def _unkeyed(labels: dict[str, str], kind: str, value: object, scale: float) -> list[Sample]:
    if isinstance(value, HistValue):
        return _histogram(labels, value, scale)
    if isinstance(value, StatsValue):
        return [("bpfrun_value", {**labels, "stat": st}, float(v) * _scaled(st, scale))
                for st in ("count", "sum", "min", "max", "avg")
                if (v := getattr(value, st)) is not None]
    if value is None:
        return []
    return [("bpfrun_value", {**labels, "stat": kind}, float(value) * _scaled(kind, scale))]  # type: ignore[arg-type]


def _histogram(labels: dict[str, str], value: HistValue, scale: float) -> list[Sample]:
    out: list[Sample] = []
    running = 0
    for bucket in value.buckets:
        running += bucket.count
        if bucket.high is not None:
            out.append(("bpfrun_histogram_bucket", {**labels, "le": _number(bucket.high * scale)},
                        float(running)))
    out.append(("bpfrun_histogram_bucket", {**labels, "le": "+Inf"}, float(value.count)))
    out.append(("bpfrun_histogram_sum", labels, float(value.sum or 0) * scale))
    out.append(("bpfrun_histogram_count", labels, float(value.count)))
    return out


def _key_text(key: object) -> str:
    """A row's key as one label value: its parts joined by `, `, a stack root first with `;`
    (as folded files), cut to 200 characters."""
    parts = []
    for v in (key.values() if isinstance(key, dict) else [key]):
        parts.append(";".join(str(f) for f in reversed(v)) if isinstance(v, list) else str(v))
    text = ", ".join(parts)
    return text if len(text) <= 200 else text[:199] + "…"


def _family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.startswith("bpfrun_histogram") and name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _expose(samples: list[Sample]) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    for family in dict.fromkeys(_family(n) for n, _, _ in samples):
        if family in seen:
            continue
        seen.add(family)
        kind, text = _HELP[family]
        lines += [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]
        for name, labels, value in samples:
            if _family(name) == family:
                lines.append(f"{name}{{{_labels(labels)}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline
    escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)
