"""The runbook JSON Schema and the readable diagnostics made from its errors.

Also drives the fixture directories: every tests/runbooks/invalid/*.yaml must fail load or
schema validation with the first diagnostic line in its .expected sibling, and every
tests/runbooks/valid/*.yaml must pass both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import TESTS
from jsonschema import Draft7Validator

from bpfrun.errors import Diagnostic, ValidationError
from bpfrun.frontend.loader import load_file, load_text
from bpfrun.frontend.schema import validate_schema
from bpfrun.paths import schema_path

FIXTURES = TESTS / "runbooks"
# check-* and type-* fixtures pass the schema and fail later: unit/compile/test_golden.py
# runs them.
LATER = ("check-", "type-")
INVALID = sorted(p for p in (FIXTURES / "invalid").glob("*.yaml")
                 if not p.name.startswith(LATER))
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"


def diags(body: str) -> list[Diagnostic]:
    return validate_schema(load_text(HEAD + body, "t.yaml"))


def lines(body: str) -> list[str]:
    """`line:col: message` per diagnostic; line numbers count the 3-line HEAD."""
    return [f"{d.loc.line}:{d.loc.col}: {d.message}" for d in diags(body) if d.loc]


def probe_with(aggregation: str) -> str:
    return ("steps:\n  - id: s\n    probes:\n      - probe: tracepoint:a:b\n"
            f"        aggregate:\n          - {aggregation}\n")


# --- fixtures --------------------------------------------------------------------------------

def first_problem(path: Path) -> str:
    try:
        doc = load_file(path.name)
    except ValidationError as e:
        return e.diagnostics[0].render(e.sources).splitlines()[0]
    found = validate_schema(doc)
    assert found, f"{path.name} passed load and schema validation"
    return found[0].render({doc.path: doc.text}).splitlines()[0]


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)  # diagnostics show the path as given: the bare file name
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").strip()
    assert first_problem(path) == expected


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_fixture(path: Path) -> None:
    doc = load_file(path)
    assert [d.render({doc.path: doc.text}) for d in validate_schema(doc)] == []


def test_fixture_directories_are_complete() -> None:
    assert len(INVALID) >= 20 and len(VALID) >= 3
    expected = {p.stem for p in (FIXTURES / "invalid").glob("*.expected")
                if not p.name.startswith(LATER)}
    assert expected == {p.stem for p in INVALID}


# --- the schema itself -----------------------------------------------------------------------

def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return loaded


def test_schema_is_draft_07_with_an_id() -> None:
    s = schema()
    Draft7Validator.check_schema(s)
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#" and s["$id"]


def walk_properties(node: Any, where: str = "#") -> list[tuple[str, Any]]:
    """Every (location, schema) that describes a named key, recursively."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.append((f"{where}/properties/{name}", sub))
        for key, sub in node.items():
            if key in ("properties", "definitions"):
                for name, s in sub.items():
                    found += walk_properties(s, f"{where}/{key}/{name}")
            elif isinstance(sub, dict | list):
                found += walk_properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            found += walk_properties(sub, f"{where}/{i}")
    return found


def test_every_key_and_definition_has_a_title_and_description() -> None:
    s = schema()
    named = walk_properties(s) + [(f"#/definitions/{n}", d) for n, d in s["definitions"].items()]
    # Bound redefinitions in lhist's if/then/else only narrow the type of min and max.
    missing = [where for where, sub in named
               if "/then/" not in where and "/else/" not in where
               and not ({"title", "description"} <= set(sub))]
    assert missing == []


def test_objects_reject_unknown_keys() -> None:
    def objects(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                found.append(node)
            for sub in node.values():
                found += objects(sub)
        elif isinstance(node, list):
            for sub in node:
                found += objects(sub)
        return found

    assert all(o.get("additionalProperties") is False for o in objects(schema()))


# --- messages --------------------------------------------------------------------------------

def test_unknown_key_with_suggestion_points_at_the_key() -> None:
    body = "steps:\n  - id: s\n    probes:\n      - probe: tracepoint:a:b\n        wehre: x\n"
    [d] = diags(body)
    assert d.message == "unknown key 'wehre' in probe; did you mean 'where'?"
    assert d.loc is not None and (d.loc.line, d.loc.col, d.loc.length) == (8, 9, 5)


def test_unknown_key_without_suggestion_lists_the_allowed_keys() -> None:
    [d] = diags("steps:\n  - id: s\n    probes: [{probe: tracepoint:a:b}]\n    zzz: 1\n")
    assert d.message == "unknown key 'zzz' in step"
    assert d.hint is not None and "probes" in d.hint and "thresholds" in d.hint


def test_misspelt_required_key_is_reported_once() -> None:
    assert lines("stepz: []\n") == ["4:1: unknown key 'stepz' in runbook; did you mean 'steps'?"]


def test_missing_id() -> None:
    assert lines("steps:\n  - title: x\n    probes: [{probe: tracepoint:a:b}]\n") == [
        "5:5: step is missing required key 'id'"]


def test_missing_keys_of_the_runbook_are_listed_together() -> None:
    doc = load_text("description: x\n", "t.yaml")
    assert [d.message for d in validate_schema(doc)] == [
        "runbook is missing required keys 'apiVersion', 'name', 'title' and 'steps'"]


def test_bad_enum_names_the_choices() -> None:
    body = ("steps:\n  - id: s\n    probes: [{probe: tracepoint:a:b}]\n    thresholds:\n"
            "      - {id: t, when: x > 1, severity: warn}\n")
    [d] = diags(body)
    assert d.message == "'warn' is not a severity; use one of info, warning, critical"
    assert d.hint == "did you mean 'warning'?"
    assert d.loc is not None and (d.loc.line, d.loc.col) == (8, 40)


def test_integer_duration_asks_for_a_unit() -> None:
    assert lines("steps:\n  - id: s\n    duration: 10\n    probes: [{probe: tracepoint:a:b}]\n"
                 ) == ["6:15: 'duration' in step: 10 has no unit; write 10s or another unit "
                       "(ns, us, ms, s, m, h)"]


@pytest.mark.parametrize("value", ["250us", "1.5s", "2m", "${{ params.duration }}"])
def test_duration_literals_and_templates_are_accepted(value: str) -> None:
    assert diags(f"steps:\n  - id: s\n    duration: '{value}'\n"
                 "    probes: [{probe: tracepoint:a:b}]\n") == []


def test_step_without_probes_or_span() -> None:
    [d] = diags("steps:\n  - id: s\n    title: nothing to attach\n")
    assert d.message == "step needs 'probes' or 'span'"
    assert d.hint == "a step needs probes, a span, or both"


def test_lhist_bounds_and_min_as_a_kind_are_both_accepted() -> None:
    assert diags(probe_with("{id: a, lhist: args.x, min: 0, max: 100, step: 10}")) == []
    assert diags(probe_with("{id: a, lhist: duration, min: 0, max: 10ms, step: 100us}")) == []
    assert diags(probe_with("{id: a, min: args.x, by: [comm]}")) == []
    assert diags(probe_with("{id: a, max: args.x}")) == []


def test_aggregation_with_two_kinds_points_at_the_second() -> None:
    assert lines(probe_with("{id: a, sum: x, avg: x}")) == [
        "9:29: aggregation has both 'sum' and 'avg'; keep only one of them"]


def test_aggregation_without_kind() -> None:
    [d] = diags(probe_with("{id: a, by: [comm]}"))
    assert d.message.startswith("aggregation needs 'count', 'sum', 'min', 'max'")


def test_lhist_with_another_kind_and_step_without_lhist() -> None:
    assert lines(probe_with("{id: a, lhist: x, min: 0, max: 9, step: 1, sum: x}")) == [
        "9:56: aggregation has both 'lhist' and 'sum'; keep only one of them"]
    assert lines(probe_with("{id: a, hist: x, step: 1}")) == [
        "9:30: 'step' in aggregation only goes with 'lhist'"]


def test_lhist_bound_that_is_an_expression_is_reported_once() -> None:
    assert lines(probe_with("{id: a, lhist: x, min: args.lo, max: 9, step: 1}")) == [
        "9:36: 'args.lo' is not a valid histogram bound: a bound is an integer, a duration "
        "such as 1ms, a size such as 4KiB, or a ${{ }} template"]


def test_type_error_says_what_was_expected() -> None:
    [d] = diags(probe_with("{id: a, count: true, by: comm}"))
    assert d.message == "'by' in aggregation: expected a list of strings, got a string"
    assert d.hint == "write [comm] for a list of one"


def test_pattern_error_says_what_the_pattern_means() -> None:
    doc = load_text("apiVersion: bpfrun/v1\nname: Big\ntitle: T\n"
                    "steps: [{id: s, probes: [{probe: tracepoint:a:b}]}]\n", "t.yaml")
    [d] = validate_schema(doc)
    assert d.message == ("'Big' is not a valid runbook name: names are lowercase letters, "
                         "digits and '-', starting with a letter")


def test_bad_param_name_points_at_the_key() -> None:
    assert lines("params:\n  Comm: {type: string}\n"
                 "steps: [{id: s, probes: [{probe: tracepoint:a:b}]}]\n") == [
        "5:3: 'Comm' is not a valid name in params: identifiers are lowercase letters, digits "
        "and '_', not starting with a digit"]


def test_context_names_span_ends_and_params() -> None:
    body = ("params:\n  comm: {type: text}\nsteps:\n  - id: s\n    span:\n"
            "      begin: {probe: tracepoint:a:b}\n      end: {probe: tracepoint:a:c, key: x}\n"
            "      aggregate: [{id: d, hist: duration}]\n")
    assert [d.message for d in diags(body)] == [
        "'text' is not a param type; use one of int, string, bool, duration, size, pid, "
        "cgroup, unit, container, pod",
        "span begin is missing required key 'key'"]


def test_limit_needs_emit() -> None:
    body = ("steps:\n  - id: s\n    probes:\n      - probe: tracepoint:a:b\n        limit: 5\n"
            "        aggregate: [{id: c, count: true}]\n")
    assert lines(body) == ["8:9: 'limit' in probe only works together with 'emit'"]


def test_selftest_shape() -> None:
    ok = ("steps: [{id: s, probes: [{probe: tracepoint:a:b}]}]\nselftest:\n"
          "  workload: [sleep, '1']\n  params: {comm: x}\n  timeout: 30s\n  note: why\n"
          "  expect:\n    fired: [s.slow]\n    not_fired: [s.fast]\n"
          "    captures: {s.who: hog}\n    steps: {s: ran}\n    rows: {s.c: {min: 1}}\n")
    assert diags(ok) == []
    bad = ok.replace("{s: ran}", "{s: done}").replace("[s.slow]", "[slow]")
    assert [d.message for d in diags(bad)] == [
        "'slow' is not a valid step reference: write step.name, e.g. runq.slow",
        "'done' is not a step status; use one of ran, skipped, failed"]


def test_all_errors_are_reported_sorted_without_duplicates() -> None:
    body = ("wat: 1\nsteps:\n  - id: s\n    duration: 5\n    probes:\n"
            "      - {probe: tracepoint:a:b, wehre: x}\n  - {title: t}\n")
    found = diags(body)
    positions = [(d.loc.line, d.loc.col) for d in found if d.loc]
    assert positions == sorted(positions)
    assert len({(d.loc, d.message) for d in found}) == len(found) == 5
