"""Comparing runs: two results of one runbook → a typed comparison (`RunDiff`), its report,
and the runbook's regression gates judged on the pair.

`compare` builds the `RunDiff` (model), `locate` finds the runs (`latest`, `latest~N`, a
folder, a result.json), `regressions` judges a runbook's `regressions:`, `document` says
what a comparison report says (with bpfrun.report's blocks), `write` writes its folder,
`validate` checks diff.json against schema/diff.schema.json, `baseline` serves
`run --baseline`.

Stage: after `report` (it renders through report's blocks), before `runtime`.
"""

from __future__ import annotations

from bpfrun.diff.compare import compare_runs
from bpfrun.diff.document import diff_blocks, diff_document
from bpfrun.diff.locate import folded_stacks, load_run, resolve_run, runs_of, source_name
from bpfrun.diff.model import (
    AggregationDiff,
    BucketCounts,
    HistChange,
    OutcomeChange,
    RowChange,
    RunDiff,
    RunRef,
    StatChange,
)
from bpfrun.diff.validate import diff_schema_path, validate_diff
from bpfrun.diff.write import DIFF_JSON, render_diff_json, write_diff

__all__ = [
    "DIFF_JSON",
    "AggregationDiff",
    "BucketCounts",
    "HistChange",
    "OutcomeChange",
    "RowChange",
    "RunDiff",
    "RunRef",
    "StatChange",
    "compare_runs",
    "diff_blocks",
    "diff_document",
    "diff_schema_path",
    "folded_stacks",
    "load_run",
    "render_diff_json",
    "resolve_run",
    "runs_of",
    "source_name",
    "validate_diff",
    "write_diff",
]
