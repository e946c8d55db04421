"""schema/result.schema.json and validate_result: every real result passes; a wrong status, a
missing key, a wrong type or rows that contradict their aggregation are named by JSON path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from every_part import every_part
from helpers.paths import FIXTURES
from jsonschema import Draft7Validator

from bpfrun.paths import result_schema_path
from bpfrun.result import json_path, result_schema, validate_result

RECORDED = sorted((FIXTURES / "results").glob("*.json"))


def fired() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "results" / "runq_fired.json").read_text())
    return data


def test_the_schema_is_draft_07_and_shipped_next_to_the_runbook_schema() -> None:
    schema = json.loads(result_schema_path().read_text())
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert (result_schema_path().parent / "runbook.schema.json").is_file()
    assert result_schema() == schema


def _properties(node: Any, where: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{where}.{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{where}[{i}]")


def test_every_field_is_described() -> None:
    schema = result_schema()
    undescribed = [where for where, sub in _properties(schema)
                   if "description" not in sub and "$ref" not in sub
                   and "/if" not in where and "/then" not in where]
    assert undescribed == []
    for name, definition in schema["definitions"].items():
        assert "description" in definition or "title" in definition, name


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_every_recorded_result_is_valid(path: Path) -> None:
    assert validate_result(json.loads(path.read_text())) == []


def test_a_result_with_every_part_is_valid() -> None:
    assert validate_result(every_part().to_json()) == []


def change(doc: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> list[str]:
    copied = copy.deepcopy(doc)
    edit(copied)
    return validate_result(copied)


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("wrong run status", lambda d: d.update(status="ok"),
     "$.status: 'ok' is not one of 'clean', 'fired', 'failed'"),
    ("wrong step status", lambda d: d["steps"][1].update(status="done"),
     "$.steps[1].status: 'done' is not one of 'ran', 'skipped', 'failed'"),
    ("wrong severity", lambda d: d["findings"][0].update(severity="high"),
     "$.findings[0].severity: 'high' is not one of 'info', 'warning', 'critical'"),
    ("missing key", lambda d: d["steps"][0]["lost"].pop("map_full"),
     "$.steps[0].lost: missing 'map_full'"),
    ("missing top-level key", lambda d: d.pop("host"), "$: missing 'host'"),
    ("wrong type", lambda d: d.update(exit_code="1"),
     "$.exit_code: expected integer, got a string '1'"),
    ("null where a number must be", lambda d: d["steps"][0].update(seconds=None),
     "$.steps[0].seconds: expected number, got null"),
    ("unknown key", lambda d: d["steps"][0].update(colour="red"),
     "$.steps[0]: unknown key 'colour'"),
    ("a hist value in a count", lambda d: d["steps"][0]["aggregations"]["slow_by"]["rows"][0]
     .update(value={"count": 1}),
     "$.steps[0].aggregations.slow_by.rows[0].value: expected integer, got an object"),
    ("a bucket without count", lambda d: d["steps"][0]["aggregations"]["dist"]["rows"][0]
     ["value"]["buckets"][3].pop("count"),
     "$.steps[0].aggregations.dist.rows[0].value.buckets[3]: missing 'count'"),
    ("a key that is an object", lambda d: d["steps"][0]["aggregations"]["slow_by"]["rows"][0]
     ["key"].update({"args.next_comm": {"a": 1}}),
     "$.steps[0].aggregations.slow_by.rows[0].key['args.next_comm']: expected string or "
     "integer or array, got an object"),
    ("a row keyed by something else", lambda d: d["steps"][0]["aggregations"]["slow_by"]
     ["rows"][1]["key"].pop("args.prev_comm"),
     "$.steps[0].aggregations.slow_by.rows[1].key: has ['args.next_comm'], the "
     "aggregation's keys are ['args.next_comm', 'args.prev_comm']"),
    ("more rows than counted", lambda d: d["steps"][0]["aggregations"]["slow_by"]
     .update(total_rows=2),
     "$.steps[0].aggregations.slow_by.rows: 3 rows, more than total_rows (2) or top (10)"),
    ("a finding that did not fire", lambda d: d["steps"][0]["thresholds"]["slow"]
     .update(fired=False),
     "$.findings[0]: step 'runq' has no threshold 'slow' that fired"),
    ("fired without findings", lambda d: d.update(findings=[]),
     "$.status: 'fired' with 0 finding(s)"),
    ("an exit code that contradicts the status", lambda d: d.update(exit_code=4),
     "$.exit_code: 4 with status 'fired' (expected 1)"),
    ("another version", lambda d: d.update(version=2), "$.version: expected 1, got 2"),
]


@pytest.mark.parametrize(("edit", "problem"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_wrong_document_is_refused_with_its_place(
        edit: Callable[[dict[str, Any]], None], problem: str) -> None:
    problems = change(fired(), edit)
    assert any(p.startswith(problem) for p in problems), problems


def test_problems_are_listed_together_and_the_untouched_parts_pass() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["status"] = "ok"
        d["steps"][1]["lost"].pop("events")

    problems = change(fired(), edit)
    assert problems == ["$.status: 'ok' is not one of 'clean', 'fired', 'failed'",
                        "$.steps[1].lost: missing 'events'"]
    assert validate_result([]) == ["$: expected object, got an array []"]


def test_json_paths_quote_keys_that_are_not_names() -> None:
    assert json_path([]) == "$"
    assert json_path(["steps", 0, "aggregations", "dist"]) == "$.steps[0].aggregations.dist"
    assert json_path(["key", "begin.kstack", 2]) == "$.key['begin.kstack'][2]"
    assert json_path(["key", "it's"]) == "$.key['it\\'s']"
