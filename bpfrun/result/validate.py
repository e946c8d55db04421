"""Is a document a result.json? The schema's verdict, then the checks a schema cannot make
(rows keyed by their aggregation's keys, findings that name a threshold that fired, a status
that agrees with them), as readable problems that start with the place's JSON path:
`$.steps[0].status: 'done' is not one of 'ran', 'skipped', 'failed'`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError as SchemaError

from bpfrun.errors import BpfrunError
from bpfrun.paths import result_schema_path

PROBLEMS_SHOWN = 10
EXIT_CODES = {"clean": (0,), "fired": (1,), "failed": (3, 4)}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JSON_TYPES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
               (list, "an array"), (dict, "an object"), (type(None), "null"))


class ResultFormatError(BpfrunError):
    """A document that is not a result.json this bpfrun can read."""

    @classmethod
    def of(cls, problems: list[str]) -> ResultFormatError:
        shown = problems[:PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        lines = shown + ([f"… and {more} more"] if more > 0 else [])
        return cls("not a result.json document:\n  " + "\n  ".join(lines),
                   hint=f"result.json's shape is {result_schema_path().name}")


@functools.cache
def result_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(result_schema_path().read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator() -> Draft7Validator:
    return Draft7Validator(result_schema())


def json_path(parts: Iterable[str | int]) -> str:
    """`$.steps[0].aggregations['args.dev']`: where a problem is, as JSONPath."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _NAME.match(p):
            out += f".{p}"
        else:
            out += "['" + p.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def validate_result(doc: Any) -> list[str]:
    """Every way `doc` is not a result.json (schema/result.schema.json, then the checks across
    fields), one line each, ordered by place; [] when it is one."""
    return shape_problems(doc) or _consistency(doc)


def shape_problems(doc: Any) -> list[str]:
    """Where `doc` does not have result.json's shape (the schema alone): what a reader needs
    to read it, whether or not its parts agree with each other."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: _order(e.absolute_path))
    return list(dict.fromkeys(f"{json_path(e.absolute_path)}: {_message(e)}" for e in errors))


def _order(path: Iterable[str | int]) -> list[tuple[int, str]]:
    return [(p, "") if isinstance(p, int) else (-1, p) for p in path]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> str:
    return next(name for t, name in _JSON_TYPES if isinstance(value, t))


def _message(e: SchemaError) -> str:
    rule: Any = e.validator_value  # what the failed keyword says (jsonschema types it loosely)
    instance: Any = e.instance
    if e.validator == "type":
        wanted = rule if isinstance(rule, list) else [rule]
        got = _kind(e.instance) + ("" if e.instance is None else f" {_short(e.instance)}")
        return f"expected {' or '.join(wanted)}, got {got}"
    if e.validator == "enum":
        allowed = ", ".join(_short(v) for v in rule)
        return f"{_short(e.instance)} is not one of {allowed}"
    if e.validator == "const":
        return f"expected {_short(rule)}, got {_short(e.instance)}"
    if e.validator == "required":
        missing = [k for k in rule if k not in instance]
        return "missing " + ", ".join(repr(k) for k in missing)
    if e.validator == "additionalProperties" and isinstance(e.instance, Mapping) \
            and isinstance(e.schema, Mapping):
        known = set(e.schema.get("properties") or {})
        extra = [k for k in e.instance if k not in known]
        return "unknown key " + ", ".join(repr(k) for k in extra)
    return e.message if len(e.message) <= 200 else e.message[:199] + "…"


def _consistency(doc: Mapping[str, Any]) -> list[str]:
    """What holds across fields of a document whose every part has the right shape."""
    out: list[str] = []
    fired: set[tuple[str, str]] = set()
    for i, step in enumerate(doc["steps"]):
        for agg_id, agg in step["aggregations"].items():
            out += _rows(("steps", i, "aggregations", agg_id), agg)
        fired |= {(step["id"], t) for t, th in step["thresholds"].items() if th["fired"]}
        if (step.get("overhead") or {}).get("stopped"):  # the budget stopped it: a finding
            fired.add((step["id"], "overhead_budget"))
    if (doc.get("host") or {}).get("target"):  # a run's target removed during a step
        fired |= {(step["id"], "target_gone") for step in doc["steps"]}
    # Regression gates (run --baseline) fire as findings of the pseudo-step "regressions".
    gates = (doc.get("baseline") or {}).get("regressions") or {}
    fired |= {("regressions", g) for g, th in gates.items() if th["fired"]}
    for i, f in enumerate(doc["findings"]):
        if (f["step"], f["threshold"]) not in fired:
            out.append(f"{json_path(('findings', i))}: step {f['step']!r} has no threshold "
                       f"{f['threshold']!r} that fired")
    status, findings = doc["status"], doc["findings"]
    if status == "clean" and findings or status == "fired" and not findings:
        out.append(f"$.status: {status!r} with {len(findings)} finding(s)")
    if doc["exit_code"] not in EXIT_CODES[status]:
        out.append(f"$.exit_code: {doc['exit_code']} with status {status!r} "
                   f"(expected {' or '.join(map(str, EXIT_CODES[status]))})")
    return out


def _rows(where: tuple[str | int, ...], agg: Mapping[str, Any]) -> list[str]:
    out = []
    keys = list(agg["keys"])
    for j, row in enumerate(agg["rows"]):
        if sorted(row["key"]) != sorted(keys):
            out.append(f"{json_path((*where, 'rows', j, 'key'))}: has {sorted(row['key'])}, "
                       f"the aggregation's keys are {sorted(keys)}")
    shown = len(agg["rows"])
    if shown > agg["total_rows"] or (agg["top"] is not None and shown > agg["top"]):
        out.append(f"{json_path((*where, 'rows'))}: {shown} rows, more than total_rows "
                   f"({agg['total_rows']}) or top ({agg['top']})")
    return out
