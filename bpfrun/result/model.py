"""The result of a run, typed: what result.json holds (schema/result.schema.json).

The runtime builds a `RunResult`; reporters, self-tests and the commands that compare or merge
runs read it. `to_json()` is result.json's document, keys in the documented order, with a
top-level `"version"`; `RunResult.from_json()` reads such a document back (one without
`version` is version 1) after checking its shape against the schema, so `from_json(to_json())`
gives an equal result and `to_json(from_json(doc))` the same document, key order included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from bpfrun.result.validate import ResultFormatError, shape_problems
from bpfrun.result.values import (
    AggregationResult,
    EventsResult,
    JsonValue,
    SeriesPoint,
    SymbolCounts,
    plain,
)

RESULT_VERSION = 1
RunStatus: TypeAlias = Literal["clean", "fired", "failed"]
StepStatus: TypeAlias = Literal["ran", "skipped", "failed"]


@dataclass(frozen=True)
class ThresholdResult:
    """A threshold of a step: whether it fired (None: no data to decide, which is not 'no')."""

    fired: bool | None
    severity: str  # info | warning | critical
    message: str
    when: str  # the condition as written
    # The message as inline Markdown: the author's text as written, every filled-in value
    # escaped (a task named "[x](https://evil)" stays text). None: the message has no template.
    message_markdown: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"fired": self.fired, "severity": self.severity,
                               "message": self.message, "when": self.when}
        if self.message_markdown is not None:
            doc["message_markdown"] = self.message_markdown
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ThresholdResult:
        return cls(doc["fired"], doc["severity"], doc["message"], doc["when"],
                   doc.get("message_markdown"))


@dataclass(frozen=True)
class LostCounts:
    """What a step could not record: events (perf/ring buffer overflow), stacks (stack map
    full or unwalkable), unpaired begins of spans, updates dropped on full maps."""

    events: int = 0
    stacks: int = 0
    unpaired: int = 0
    map_full: int = 0

    def to_json(self) -> dict[str, int]:
        return {"events": self.events, "stacks": self.stacks, "unpaired": self.unpaired,
                "map_full": self.map_full}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LostCounts:
        return cls(doc["events"], doc["stacks"], doc["unpaired"], doc["map_full"])


@dataclass(frozen=True)
class Overhead:
    """What a step's own BPF programs cost while attached: nanoseconds in them, their runs
    (probe hits), that time as a share of all CPUs, the budget, and whether it stopped the
    step early."""

    bpf_ns: int
    events: int
    cpu_percent: float
    budget_percent: float | None  # None: no limit
    stopped: bool = False
    # Share of the time the kernel timed the programs; bpf_ns and events are scaled from it
    # (None: all of it, exact).
    timed_percent: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"bpf_ns": self.bpf_ns, "events": self.events, "cpu_percent": self.cpu_percent,
               "budget_percent": self.budget_percent, "stopped": self.stopped}
        if self.timed_percent is not None:
            out["timed_percent"] = self.timed_percent
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Overhead:
        return cls(doc["bpf_ns"], doc["events"], doc["cpu_percent"], doc["budget_percent"],
                   doc["stopped"], doc.get("timed_percent"))


@dataclass(frozen=True)
class StepResult:
    """One step: whether it ran (and if not, why), what it attached and what it found."""

    id: str
    title: str
    why: str | None
    status: StepStatus
    reason: str | None = None  # why it was skipped or failed
    seconds: float = 0.0  # how long its probes were attached (`elapsed`)
    compile_seconds: float = 0.0
    program: str | None = None  # its generated C's file name
    probes: tuple[str, ...] = ()  # as attached, fallbacks applied
    fallbacks: Mapping[str, str] = field(default_factory=dict)  # requested → used
    predicates: Mapping[str, str] = field(default_factory=dict)  # probe → kernel-side `where`
    aggregations: Mapping[str, AggregationResult] = field(default_factory=dict)
    events: tuple[EventsResult, ...] = ()
    thresholds: Mapping[str, ThresholdResult] = field(default_factory=dict)
    captures: Mapping[str, JsonValue] = field(default_factory=dict)
    lost: LostCounts = field(default_factory=LostCounts)
    series: tuple[SeriesPoint, ...] = ()  # interval probes; () when the step has none
    notes: tuple[str, ...] = ()  # captures and thresholds not evaluated; sampled aggregations
    symbols: SymbolCounts | None = None  # steps with user stacks only
    overhead: Overhead | None = None  # steps that ran where BPF statistics could be read

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "why": self.why, "status": self.status,
            "reason": self.reason, "seconds": self.seconds,
            "compile_seconds": self.compile_seconds, "program": self.program,
            "probes": list(self.probes), "fallbacks": dict(self.fallbacks),
            "predicates": dict(self.predicates),
            "aggregations": {k: a.to_json() for k, a in self.aggregations.items()},
            "events": [e.to_json() for e in self.events],
            "thresholds": {k: t.to_json() for k, t in self.thresholds.items()},
            "captures": plain(self.captures), "lost": self.lost.to_json(),
        }
        if self.series:
            out["series"] = {"points": [p.to_json() for p in self.series]}
        if self.notes:
            out["notes"] = list(self.notes)
        if self.symbols is not None:
            out["symbols"] = self.symbols.to_json()
        if self.overhead is not None:
            out["overhead"] = self.overhead.to_json()
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StepResult:
        return cls(
            doc["id"], doc["title"], doc["why"], doc["status"], doc["reason"], doc["seconds"],
            doc["compile_seconds"], doc["program"], tuple(doc["probes"]),
            dict(doc["fallbacks"]), dict(doc["predicates"]),
            {k: AggregationResult.from_json(a) for k, a in doc["aggregations"].items()},
            tuple(EventsResult.from_json(e) for e in doc["events"]),
            {k: ThresholdResult.from_json(t) for k, t in doc["thresholds"].items()},
            plain(doc["captures"]), LostCounts.from_json(doc["lost"]),
            tuple(SeriesPoint.from_json(p) for p in (doc.get("series") or {}).get("points", ())),
            tuple(doc.get("notes") or ()),
            SymbolCounts.from_json(doc["symbols"]) if "symbols" in doc else None,
            Overhead.from_json(doc["overhead"]) if "overhead" in doc else None)


@dataclass(frozen=True)
class Finding:
    """A threshold that fired: what the report leads with."""

    step: str
    threshold: str
    severity: str
    message: str
    message_markdown: str | None = None  # as ThresholdResult.message_markdown

    def to_json(self) -> dict[str, Any]:
        doc = {"step": self.step, "threshold": self.threshold, "severity": self.severity,
               "message": self.message}
        if self.message_markdown is not None:
            doc["message_markdown"] = self.message_markdown
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Finding:
        return cls(doc["step"], doc["threshold"], doc["severity"], doc["message"],
                   doc.get("message_markdown"))


@dataclass(frozen=True)
class RunbookInfo:
    name: str
    path: str
    title: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "title": self.title,
                "description": self.description}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunbookInfo:
        return cls(doc["name"], doc["path"], doc["title"], doc["description"])


@dataclass(frozen=True)
class Host:
    hostname: str
    kernel: str  # release, as `uname -r`
    # The run's target on this host (--cgroup/--unit/--container/--pod): kind, asked, path,
    # id, label; None: every task.
    target: Mapping[str, Any] | None = None
    # Names of the cgroup ids in the results ("unit checkout.service"), taken during the
    # run: cgroup ids mean something only on this host, and short-lived ones are gone later.
    cgroups: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"hostname": self.hostname, "kernel": self.kernel}
        if self.target is not None:
            doc["target"] = dict(self.target)
        if self.cgroups:
            doc["cgroups"] = dict(self.cgroups)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Host:
        return cls(doc["hostname"], doc["kernel"], doc.get("target"),
                   dict(doc.get("cgroups", {})))


@dataclass(frozen=True)
class RunResult:
    """A whole run: the runbook and host, the params used, the outcome and every step."""

    runbook: RunbookInfo
    host: Host
    bpfrun_version: str
    started: str  # UTC, ISO 8601 with a Z
    finished: str
    params: Mapping[str, str]  # as displayed: "5ms", "true", "" for none
    status: RunStatus
    exit_code: int  # what `bpfrun run` exits with
    findings: tuple[Finding, ...] = ()
    steps: tuple[StepResult, ...] = ()
    error: str | None = None  # why the run failed, or that it was interrupted
    interrupted: bool = False
    # The comparison with a baseline run (`run --baseline`), in bpfrun.diff's JSON form
    # (RunDiff.to_json()); None without a baseline.
    baseline: Mapping[str, Any] | None = None
    # A fleet result's hosts (`bpfrun merge`), in bpfrun.fleet's JSON form; None for a run.
    hosts: Mapping[str, Any] | None = None

    def step(self, step_id: str) -> StepResult | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "runbook": self.runbook.to_json(), "host": self.host.to_json(),
            "bpfrun_version": self.bpfrun_version, "started": self.started,
            "finished": self.finished, "params": dict(self.params), "status": self.status,
            "exit_code": self.exit_code, "findings": [f.to_json() for f in self.findings],
            "steps": [s.to_json() for s in self.steps], "error": self.error,
            "interrupted": self.interrupted,
        }
        if self.baseline is not None:
            doc["baseline"] = plain(self.baseline)
        if self.hosts is not None:
            doc["hosts"] = plain(self.hosts)
        doc["version"] = RESULT_VERSION
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunResult:
        """Read a result.json document; ResultFormatError names every place it is not one."""
        if not isinstance(doc, Mapping):
            raise ResultFormatError("result.json: not a JSON object")
        version = doc.get("version", RESULT_VERSION)
        if version != RESULT_VERSION:
            raise ResultFormatError(
                f"result.json: version {version!r} is not one this bpfrun reads "
                f"({RESULT_VERSION})", hint="read it with the bpfrun that wrote it")
        problems = shape_problems(doc)  # validate_result also checks that the parts agree
        if problems:
            raise ResultFormatError.of(problems)
        return cls(
            RunbookInfo.from_json(doc["runbook"]), Host.from_json(doc["host"]),
            doc["bpfrun_version"], doc["started"], doc["finished"], dict(doc["params"]),
            cast(RunStatus, doc["status"]), doc["exit_code"],
            tuple(Finding.from_json(f) for f in doc["findings"]),
            tuple(StepResult.from_json(s) for s in doc["steps"]), doc["error"],
            doc["interrupted"], plain(doc["baseline"]) if "baseline" in doc else None,
            plain(doc["hosts"]) if "hosts" in doc else None)


def as_run_result(result: RunResult | Mapping[str, Any]) -> RunResult:
    """A RunResult, read from its document when given one (reports of a saved result.json)."""
    return result if isinstance(result, RunResult) else RunResult.from_json(result)


__all__ = [
    "RESULT_VERSION",
    "Finding",
    "Host",
    "LostCounts",
    "Overhead",
    "RunResult",
    "RunStatus",
    "RunbookInfo",
    "StepResult",
    "StepStatus",
    "ThresholdResult",
    "as_run_result",
]
