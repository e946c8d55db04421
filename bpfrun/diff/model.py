"""The comparison of two runs of one runbook, typed: what `bpfrun diff` and `run --baseline`
report, and its JSON form (diff.json, and result.json's `baseline` section).

Numbers are result.json's: in each aggregation's `unit`, percentiles as bucket upper bounds.
A `factor` is AFTER / BEFORE (None when BEFORE is 0 or either side has no data), so 0.06
means "fell sixteen-fold". Keyed rows and stacks are compared as rates per second when the
two steps measured for different times (`per_second`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from bpfrun.result import JsonValue, Number, ThresholdResult

RowChangeKind: TypeAlias = Literal["appeared", "vanished", "grew", "shrank", "same"]
DIFF_VERSION = 1


def factor_of(before: Number | None, after: Number | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return after / before


@dataclass(frozen=True)
class RunRef:
    """One side of the comparison: where it was read from and what it ran."""

    source: str  # the folder or result.json it was read from
    runbook: str
    started: str
    finished: str
    hostname: str
    kernel: str
    params: Mapping[str, str] = field(default_factory=dict)
    status: str = "clean"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "runbook": self.runbook, "started": self.started,
                "finished": self.finished, "hostname": self.hostname, "kernel": self.kernel,
                "params": dict(self.params), "status": self.status}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunRef:
        return cls(doc["source"], doc["runbook"], doc["started"], doc["finished"],
                   doc["hostname"], doc["kernel"], dict(doc["params"]), doc["status"])


@dataclass(frozen=True)
class StatChange:
    """One statistic of a histogram row (p50, p90, p99, max, count), before → after."""

    name: str
    before: Number | None
    after: Number | None

    @property
    def factor(self) -> float | None:
        return factor_of(self.before, self.after)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after,
                "factor": self.factor}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StatChange:
        return cls(doc["name"], doc["before"], doc["after"])


@dataclass(frozen=True)
class BucketCounts:
    """One bucket of a histogram row in both runs (`high` None: open-ended)."""

    low: Number | None
    high: Number | None
    before: int
    after: int

    def to_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "before": self.before, "after": self.after}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BucketCounts:
        return cls(doc["low"], doc["high"], doc["before"], doc["after"])


@dataclass(frozen=True)
class HistChange:
    """A histogram row (keyless: key {}) in both runs: its statistics and every bucket that
    is not empty in at least one of them, lowest first."""

    key: Mapping[str, JsonValue]
    stats: tuple[StatChange, ...]
    buckets: tuple[BucketCounts, ...]

    def stat(self, name: str) -> StatChange | None:
        return next((s for s in self.stats if s.name == name), None)

    @property
    def appeared(self) -> tuple[BucketCounts, ...]:
        return tuple(b for b in self.buckets if b.after and not b.before)

    @property
    def emptied(self) -> tuple[BucketCounts, ...]:
        return tuple(b for b in self.buckets if b.before and not b.after)

    def to_json(self) -> dict[str, Any]:
        return {"key": dict(self.key), "stats": [s.to_json() for s in self.stats],
                "buckets": [b.to_json() for b in self.buckets]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HistChange:
        return cls(dict(doc["key"]), tuple(StatChange.from_json(s) for s in doc["stats"]),
                   tuple(BucketCounts.from_json(b) for b in doc["buckets"]))


@dataclass(frozen=True)
class RowChange:
    """A keyed row (or a folded stack, `label` root first) in both runs: its value, or its
    rate per second when the aggregation's `per_second` says so; None where it is absent."""

    label: str
    key: Mapping[str, JsonValue]
    before: float | None
    after: float | None

    @property
    def change(self) -> RowChangeKind:
        before, after = self.before or 0, self.after or 0
        if not before and after:
            return "appeared"
        if before and not after:
            return "vanished"
        return "grew" if after > before else "shrank" if after < before else "same"

    @property
    def delta(self) -> float:
        return (self.after or 0) - (self.before or 0)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "key": dict(self.key), "before": self.before,
                "after": self.after, "change": self.change}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RowChange:
        return cls(doc["label"], dict(doc["key"]), doc["before"], doc["after"])


@dataclass(frozen=True)
class AggregationDiff:
    """One aggregation of one step in both runs. `rows`: keyed rows or stacks, largest change
    first; `histograms`: hist rows; `folded_before`/`folded_after`: stacks as flame graphs
    draw them (stack aggregations only). `score` ranks aggregations: |log2 factor| of the
    largest percentile change for histograms, the share of the total that moved for rows."""

    step: str
    id: str
    kind: str
    keys: tuple[str, ...]
    unit: str | None
    per_second: bool
    score: float
    histograms: tuple[HistChange, ...] = ()
    rows: tuple[RowChange, ...] = ()
    stacks: bool = False
    folded_before: Mapping[str, int] = field(default_factory=dict)
    folded_after: Mapping[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        if any(s.before != s.after for h in self.histograms for s in h.stats):
            return True
        return any(r.change != "same" for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step, "id": self.id, "kind": self.kind, "keys": list(self.keys),
            "unit": self.unit, "per_second": self.per_second, "score": self.score,
            "changed": self.changed, "histograms": [h.to_json() for h in self.histograms],
            "rows": [r.to_json() for r in self.rows], "stacks": self.stacks}
        if self.stacks:
            out["folded_before"] = dict(self.folded_before)
            out["folded_after"] = dict(self.folded_after)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AggregationDiff:
        return cls(doc["step"], doc["id"], doc["kind"], tuple(doc["keys"]), doc["unit"],
                   doc["per_second"], doc["score"],
                   tuple(HistChange.from_json(h) for h in doc["histograms"]),
                   tuple(RowChange.from_json(r) for r in doc["rows"]), doc["stacks"],
                   dict(doc.get("folded_before") or {}), dict(doc.get("folded_after") or {}))


@dataclass(frozen=True)
class OutcomeChange:
    """A threshold or capture of a step in both runs, and the sentence that says what changed
    ("runq.slow no longer fires"); `changed` False when both runs agree."""

    step: str
    id: str
    what: Literal["threshold", "capture"]
    before: JsonValue
    after: JsonValue
    sentence: str
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "id": self.id, "what": self.what, "before": self.before,
                "after": self.after, "sentence": self.sentence, "changed": self.changed}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OutcomeChange:
        return cls(doc["step"], doc["id"], doc["what"], doc["before"], doc["after"],
                   doc["sentence"], doc["changed"])


@dataclass(frozen=True)
class RunDiff:
    """Two runs of one runbook compared: what differs between the runs themselves
    (`warnings`: kernel, host, params, durations), then outcomes, then aggregations ranked by
    how much they changed; `regressions`: the runbook's gates, judged on the pair."""

    runbook: str
    before: RunRef
    after: RunRef
    warnings: tuple[str, ...] = ()
    outcomes: tuple[OutcomeChange, ...] = ()
    aggregations: tuple[AggregationDiff, ...] = ()
    regressions: Mapping[str, ThresholdResult] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(o.changed for o in self.outcomes) or any(a.changed for a in self.aggregations)

    def aggregation(self, step: str, agg_id: str) -> AggregationDiff | None:
        return next((a for a in self.aggregations if (a.step, a.id) == (step, agg_id)), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook, "before": self.before.to_json(),
            "after": self.after.to_json(), "changed": self.changed,
            "warnings": list(self.warnings), "outcomes": [o.to_json() for o in self.outcomes],
            "aggregations": [a.to_json() for a in self.aggregations],
            "regressions": {k: r.to_json() for k, r in self.regressions.items()},
            "version": DIFF_VERSION}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunDiff:
        return cls(doc["runbook"], RunRef.from_json(doc["before"]),
                   RunRef.from_json(doc["after"]), tuple(doc["warnings"]),
                   tuple(OutcomeChange.from_json(o) for o in doc["outcomes"]),
                   tuple(AggregationDiff.from_json(a) for a in doc["aggregations"]),
                   {k: ThresholdResult.from_json(r) for k, r in
                    (doc.get("regressions") or {}).items()})
