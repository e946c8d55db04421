"""What a step measured, as result.json holds it: aggregations, their rows and values, events.

These are the document's numbers, not the runtime's typed values: durations and sizes are
plain numbers in the aggregation's `unit`, histogram percentiles are bucket upper bounds, and
a bucket's `high` is exclusive (`None` for the open-ended buckets of `lhist`). `to_json` gives
each part with result.json's keys in result.json's order; `from_json` reads a part that has
already been checked against schema/result.schema.json (`RunResult.from_json` does that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Number: TypeAlias = int | float
# Any JSON value: a key or event field (a string, an integer, a stack's frame names), a capture.
JsonValue: TypeAlias = Any

HIST_KINDS = ("hist", "lhist")
STATS_FIELDS = ("count", "sum", "min", "max", "avg")
PERCENTILES = ("p50", "p90", "p99")


def plain(value: JsonValue) -> JsonValue:
    """A copy of a JSON value, so that a document and the model built from it share no list."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Bucket:
    """One histogram bucket: values in [low, high) in the aggregation's unit."""

    low: Number | None  # None: everything below the first edge (lhist)
    high: Number | None  # None: everything from the last edge on (lhist)
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "count": self.count}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Bucket:
        return cls(doc["low"], doc["high"], doc["count"])


@dataclass(frozen=True)
class Over:
    """How many values of a histogram row were above `limit` (in the aggregation's unit),
    counted exactly in the kernel because a threshold compares a percentile with it."""

    limit: Number
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "count": self.count}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Over:
        return cls(doc["limit"], doc["count"])


@dataclass(frozen=True)
class StatsValue:
    """The value of a `stats` row: how many values, and their sum, min, max and average.
    All but `count` are None when nothing was recorded."""

    count: int
    sum: Number | None = None
    min: Number | None = None
    max: Number | None = None
    avg: Number | None = None

    def stat(self, name: str) -> Number | None:
        """A statistic by its result.json name: count, sum, min, max, avg (p50… for hists)."""
        if name not in self._names():
            raise KeyError(name)
        value: Number | None = getattr(self, name)
        return value

    def _names(self) -> tuple[str, ...]:
        return STATS_FIELDS

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATS_FIELDS}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StatsValue:
        return cls(*(doc[name] for name in STATS_FIELDS))


@dataclass(frozen=True)
class HistValue(StatsValue):
    """The value of a `hist` or `lhist` row: the stats, percentiles and the non-empty buckets."""

    p50: Number | None = None
    p90: Number | None = None
    p99: Number | None = None
    buckets: tuple[Bucket, ...] = ()
    over: tuple[Over, ...] = ()  # exact counts above limits; () when none was counted

    def _names(self) -> tuple[str, ...]:
        return STATS_FIELDS + PERCENTILES

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out.update({name: getattr(self, name) for name in PERCENTILES})
        out["buckets"] = [b.to_json() for b in self.buckets]
        if self.over:
            out["over"] = [o.to_json() for o in self.over]
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HistValue:
        stats = {name: doc[name] for name in STATS_FIELDS + PERCENTILES}
        return cls(**stats, buckets=tuple(Bucket.from_json(b) for b in doc["buckets"]),
                   over=tuple(Over.from_json(o) for o in doc.get("over", ())))


@dataclass(frozen=True)
class StackFrame:
    """One frame of a stack in full: `function+0xoff (file.c:LINE) [module]`. An inlined
    frame (`inlined`) shares its address with the frame after it and has no offset; an
    unresolved frame has no function and says why (`reason`, one of symbolize's sentences)."""

    function: str | None
    offset: int | None = None  # from the function's start
    file: str | None = None
    line: int | None = None
    module: str = ""  # a binary's basename, "vdso", "kernel", "anon"; "" when none
    inlined: bool = False
    reason: str | None = None

    def text(self, *, reason: bool = True) -> str:
        """The full form; the reason follows an unresolved frame in parentheses."""
        if self.function is None:
            out = f"[unknown] [{self.module}]" if self.module else "[unknown]"
            return f"{out} ({self.reason})" if reason and self.reason else out
        out = self.function if self.offset is None else f"{self.function}+0x{self.offset:x}"
        if self.file and self.line:
            out += f" ({self.file.rsplit('/', 1)[-1]}:{self.line})"
        out += f" [{self.module}]" if self.module else ""
        return out + " (inlined)" if self.inlined else out

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "offset": self.offset, "file": self.file,
                "line": self.line, "module": self.module, "inlined": self.inlined,
                "reason": self.reason}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StackFrame:
        return cls(doc["function"], doc["offset"], doc["file"], doc["line"], doc["module"],
                   doc["inlined"], doc["reason"])


class FramedStack(list[str]):
    """A stack key's value as the runtime holds it: the frame names (what expressions,
    folded files and flame graphs read; equal to a plain list of them) carrying each frame
    in full (`frames`, same order and length)."""

    frames: tuple[StackFrame, ...]

    def __init__(self, names: list[str], frames: tuple[StackFrame, ...] = ()) -> None:
        super().__init__(names)
        self.frames = frames


# count, sum, min, max, avg: a number (min/max/avg None without data); stats, hist: an object.
RowValue: TypeAlias = Number | StatsValue | None


def value_json(value: RowValue) -> Any:
    return value.to_json() if isinstance(value, StatsValue) else value


def value_from_json(kind: str, doc: Any) -> RowValue:
    if kind in HIST_KINDS:
        return HistValue.from_json(doc)
    if kind == "stats":
        return StatsValue.from_json(doc)
    number: Number | None = doc
    return number


@dataclass(frozen=True)
class AggregationRow:
    """One row: the value of each `by:` expression (a stack key: frame names, innermost
    first, as folded files and flame graphs use them) and what was aggregated for it.
    `frames` (optional) gives a stack key's frames in full, one per name, for the report:
    function, offset, file:line, module, inlined, and why a frame is unresolved."""

    key: Mapping[str, JsonValue]
    value: RowValue
    frames: Mapping[str, tuple[StackFrame, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"key": plain(self.key), "value": value_json(self.value)}
        if self.frames:
            out["frames"] = {k: [f.to_json() for f in fs] for k, fs in self.frames.items()}
        return out

    @classmethod
    def from_json(cls, kind: str, doc: Mapping[str, Any]) -> AggregationRow:
        frames = {k: tuple(StackFrame.from_json(f) for f in fs)
                  for k, fs in (doc.get("frames") or {}).items()}
        return cls(plain(doc["key"]), value_from_json(kind, doc["value"]), frames)


@dataclass(frozen=True)
class AggregationResult:
    """One aggregation of a step. `rows` are sorted by value, largest first, and cut to `top`
    (`total_rows` counts them all). Aggregations keyed by stacks may name the files their
    stacks were written to (`folded`, `svg`)."""

    kind: str  # count | sum | min | max | avg | stats | hist | lhist
    keys: tuple[str, ...]  # the `by:` expressions as written; () for none
    unit: str | None  # of every duration and size number of it; None for plain numbers
    top: int | None
    total_rows: int
    rows: tuple[AggregationRow, ...]
    folded: str | None = None
    svg: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "keys": list(self.keys), "unit": self.unit,
                               "top": self.top, "total_rows": self.total_rows}
        if self.folded is not None:
            out["folded"] = self.folded
        if self.svg is not None:
            out["svg"] = self.svg
        out["rows"] = [r.to_json() for r in self.rows]
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AggregationResult:
        kind = doc["kind"]
        return cls(kind, tuple(doc["keys"]), doc["unit"], doc["top"], doc["total_rows"],
                   tuple(AggregationRow.from_json(kind, r) for r in doc["rows"]),
                   doc.get("folded"), doc.get("svg"))


@dataclass(frozen=True)
class EventsResult:
    """The events one probe emitted: a row per event (field expression → value), the first
    `limit` of them kept; `seen` counts every hit, `dropped` those past the limit."""

    probe: str
    id: str
    fields: tuple[str, ...]
    rows: tuple[Mapping[str, JsonValue], ...]
    dropped: int
    seen: int

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.probe, "id": self.id, "fields": list(self.fields),
                "rows": [plain(r) for r in self.rows], "dropped": self.dropped,
                "seen": self.seen}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EventsResult:
        return cls(doc["probe"], doc["id"], tuple(doc["fields"]),
                   tuple(plain(r) for r in doc["rows"]), doc["dropped"], doc["seen"])


@dataclass(frozen=True)
class UnresolvedFrames:
    """User frames of one module left unresolved for one reason."""

    reason: str
    module: str  # the file's path when known, else the mapping's name ("anon", "vdso")
    frames: int

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "module": self.module, "frames": self.frames}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> UnresolvedFrames:
        return cls(doc["reason"], doc["module"], doc["frames"])


@dataclass(frozen=True)
class SymbolCounts:
    """How well a step's user stacks were named: their frames (each distinct stack of each
    process counted once), how many stayed unresolved, and those by reason and module,
    most first."""

    user_frames: int
    unresolved: int = 0
    by_reason: tuple[UnresolvedFrames, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"user_frames": self.user_frames, "unresolved": self.unresolved,
                "by_reason": [u.to_json() for u in self.by_reason]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SymbolCounts:
        return cls(doc["user_frames"], doc["unresolved"],
                   tuple(UnresolvedFrames.from_json(u) for u in doc["by_reason"]))


@dataclass(frozen=True)
class SeriesPoint:
    """One tick of an `interval` probe: seconds since the step's start, and what each
    aggregation gained since the previous tick (counts and sums; others count hits)."""

    t: float
    added: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, **self.added}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SeriesPoint:
        return cls(doc["t"], {k: v for k, v in doc.items() if k != "t"})
