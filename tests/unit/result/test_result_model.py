"""The typed result: result.json → RunResult → result.json gives the same document, key order
included, for every recorded result and for one built in code (every_part.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from every_part import every_part
from helpers.paths import FIXTURES

from bpfrun.result import (
    RESULT_VERSION,
    Bucket,
    HistValue,
    ResultFormatError,
    RunResult,
    StatsValue,
    as_run_result,
    shape_problems,
    validate_result,
)

RECORDED = sorted((FIXTURES / "results").glob("*.json"))


def text(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_every_recorded_result_reads_back_to_the_same_document(path: Path) -> None:
    doc = json.loads(path.read_text())
    result = RunResult.from_json(doc)
    assert text(result.to_json()) == text(doc)  # same keys, values and key order
    assert RunResult.from_json(result.to_json()) == result


def test_there_are_recorded_results() -> None:
    assert len(RECORDED) >= 3


def test_a_result_built_in_code_round_trips_and_validates() -> None:
    result = every_part()
    doc = result.to_json()
    assert validate_result(doc) == []
    assert RunResult.from_json(doc) == result
    assert RunResult.from_json(json.loads(text(doc))) == result  # through the JSON text
    assert text(RunResult.from_json(doc).to_json()) == text(doc)


def test_the_document_keeps_the_documented_order_and_ends_with_its_version(
        ) -> None:
    doc = every_part().to_json()
    assert list(doc) == ["runbook", "host", "bpfrun_version", "started", "finished", "params",
                         "status", "exit_code", "findings", "steps", "error", "interrupted",
                         "version"]
    assert doc["version"] == RESULT_VERSION == 1
    step = doc["steps"][0]
    assert list(step) == ["id", "title", "why", "status", "reason", "seconds",
                          "compile_seconds", "program", "probes", "fallbacks", "predicates",
                          "aggregations", "events", "thresholds", "captures", "lost", "series",
                          "notes", "symbols"]
    assert list(step["aggregations"]["stacks"]) == ["kind", "keys", "unit", "top", "total_rows",
                                                     "folded", "svg", "rows"]
    assert list(step["aggregations"]["dist"]["rows"][0]["value"]) == [
        "count", "sum", "min", "max", "avg", "p50", "p90", "p99", "buckets"]
    assert step["series"] == {"points": [{"t": 0.5, "calls": 4}, {"t": 1.0, "calls": 6}]}
    skipped = doc["steps"][2]
    assert "series" not in skipped and "notes" not in skipped  # only when there are some
    assert "symbols" not in skipped
    assert "frames" not in step["aggregations"]["stacks"]["rows"][0]  # only when known
    frames = step["aggregations"]["ustacks"]["rows"][0]["frames"]["ustack"]
    assert frames[1] == {"function": "main", "offset": 0x4d, "file": "/src/prog.c",
                         "line": 14, "module": "prog", "inlined": False, "reason": None}
    assert step["symbols"] == {"user_frames": 3, "unresolved": 1, "by_reason": [
        {"reason": "anonymous memory (JIT?)", "module": "anon", "frames": 1}]}


def test_a_stack_frame_reads_in_full() -> None:
    from bpfrun.result import StackFrame  # noqa: PLC0415

    assert StackFrame("main", 0x4d, "/src/t.c", 14, "t").text() == "main+0x4d (t.c:14) [t]"
    assert StackFrame("spin", None, "t.c", 11, "t", True).text() == "spin (t.c:11) [t] (inlined)"
    assert StackFrame("do_idle", 0x1a, module="kernel").text() == "do_idle+0x1a [kernel]"
    gone = StackFrame(None, module="anon", reason="anonymous memory (JIT?)")
    assert gone.text() == "[unknown] [anon] (anonymous memory (JIT?))"
    assert gone.text(reason=False) == "[unknown] [anon]"


def test_a_document_without_version_is_version_1() -> None:
    doc = every_part().to_json()
    del doc["version"]
    assert RunResult.from_json(doc) == every_part()


def test_another_version_is_refused() -> None:
    doc = {**every_part().to_json(), "version": 2}
    with pytest.raises(ResultFormatError, match="version 2 is not one this bpfrun reads"):
        RunResult.from_json(doc)


def test_a_malformed_document_is_refused_with_every_place_named() -> None:
    doc = every_part().to_json()
    doc["status"] = "done"
    del doc["steps"][1]["lost"]
    with pytest.raises(ResultFormatError) as e:
        RunResult.from_json(doc)
    assert "$.status: 'done' is not one of 'clean', 'fired', 'failed'" in e.value.message
    assert "$.steps[1]: missing 'lost'" in e.value.message
    with pytest.raises(ResultFormatError, match="not a JSON object"):
        RunResult.from_json([])  # type: ignore[arg-type]


def test_the_model_shares_nothing_with_its_document() -> None:
    doc = every_part().to_json()
    result = RunResult.from_json(doc)
    doc["steps"][0]["aggregations"]["stacks"]["rows"][0]["key"]["kstack"].append("changed")
    out = result.to_json()
    out["steps"][0]["captures"]["many"].append(3)
    assert result == every_part() and result.to_json() == every_part().to_json()


def test_typed_values_name_their_statistics() -> None:
    step = every_part().steps[0]
    dist = step.aggregations["dist"].rows[0].value
    assert isinstance(dist, HistValue) and isinstance(dist, StatsValue)
    assert (dist.stat("count"), dist.stat("p99"), dist.buckets[0]) == (5, 20, Bucket(0, 2, 1))
    stats = step.aggregations["lat"].rows[0].value
    assert isinstance(stats, StatsValue) and stats.stat("avg") == 1.75
    with pytest.raises(KeyError):
        stats.stat("p99")  # a stats row has no percentiles
    assert step.aggregations["calls"].rows[0].value == 10
    assert every_part().step("u") is not None and every_part().step("nope") is None


def test_as_run_result_reads_documents_and_passes_results_through() -> None:
    result = every_part()
    assert as_run_result(result) is result
    assert as_run_result(result.to_json()) == result


def test_reading_needs_the_shape_only_and_validation_also_checks_the_parts_agree() -> None:
    doc = every_part().to_json()
    doc["steps"] = doc["steps"][1:]  # the finding's step is gone: a cut-down document
    assert RunResult.from_json(doc).findings[0].step == "s"
    assert shape_problems(doc) == []
    assert validate_result(doc) == ["$.findings[0]: step 's' has no threshold 'busy' that fired"]
