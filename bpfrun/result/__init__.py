"""The result of a run: a typed model (`RunResult` and its parts) and result.json's schema.

The runtime produces a `RunResult`; reporters, self-tests and the commands that compare runs
read it. `RunResult.to_json()` is result.json; `RunResult.from_json()` reads one back once it
has the schema's shape (schema/result.schema.json); `validate_result` also checks that its
parts agree (rows and their keys, findings and thresholds, status and exit code).
"""

from __future__ import annotations

from bpfrun.result.model import (
    RESULT_VERSION,
    Finding,
    Host,
    LostCounts,
    Overhead,
    RunbookInfo,
    RunResult,
    RunStatus,
    StepResult,
    StepStatus,
    ThresholdResult,
    as_run_result,
)
from bpfrun.result.validate import (
    ResultFormatError,
    json_path,
    result_schema,
    shape_problems,
    validate_result,
)
from bpfrun.result.values import (
    AggregationResult,
    AggregationRow,
    Bucket,
    EventsResult,
    FramedStack,
    HistValue,
    JsonValue,
    Number,
    RowValue,
    SeriesPoint,
    StackFrame,
    StatsValue,
    SymbolCounts,
    UnresolvedFrames,
)

__all__ = [
    "RESULT_VERSION",
    "AggregationResult",
    "AggregationRow",
    "Bucket",
    "EventsResult",
    "Finding",
    "FramedStack",
    "HistValue",
    "Host",
    "JsonValue",
    "LostCounts",
    "Number",
    "Overhead",
    "ResultFormatError",
    "RowValue",
    "RunResult",
    "RunStatus",
    "RunbookInfo",
    "SeriesPoint",
    "StackFrame",
    "StatsValue",
    "StepResult",
    "StepStatus",
    "SymbolCounts",
    "ThresholdResult",
    "UnresolvedFrames",
    "as_run_result",
    "json_path",
    "result_schema",
    "shape_problems",
    "validate_result",
]
