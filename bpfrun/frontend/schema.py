"""Check a loaded runbook against schema/runbook.schema.json and explain what is wrong.

jsonschema's own messages ("Additional properties are not allowed ('wehre' was unexpected)")
are written for schema authors; here each error becomes a Diagnostic at the offending key or
value, in the runbook's words (step, probe, span begin, aggregation, ...), with a fix.
The same schema drives editors, so its `errorMessage` texts are reused where they fit.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match

from bpfrun.errors import Diagnostic
from bpfrun.frontend.loader import Document, KeyPath
from bpfrun.paths import schema_path

_ITEM_NOUNS = {"steps": "step", "probes": "probe", "aggregate": "aggregation",
               "thresholds": "threshold"}
_TYPE_NOUNS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "a boolean", "object": "a mapping", "array": "a list",
               "null": "nothing"}
_VALUE_CHECKS = {"type", "pattern", "enum", "const", "minimum", "minItems", "minLength"}
_TITLE_NOUNS = {"Expression": "an expression", "Predicate": "an expression or true/false",
                "Duration": "a duration such as 10s",
                "Histogram bound": "an integer or a string such as 1ms or 4KiB"}


@functools.cache
def _schema() -> dict[str, Any]:
    with open(schema_path(), encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _whole_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """`pattern` as the schema means it: its `$` is the end of the string. Python's `$` also
    matches before a final newline, which let `id: "s\\n"` through into C identifiers."""
    if isinstance(instance, str):
        anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") \
            and not pattern.endswith("\\$") else pattern
        if not re.search(anchored, instance):
            yield SchemaError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(Draft7Validator, {"pattern": _whole_pattern})


@functools.cache
def _validator() -> Draft7Validator:
    validator: Draft7Validator = _StrictValidator(_schema())
    return validator


def schema_errors(doc: Document) -> list[SchemaError]:
    """jsonschema's own errors of `doc`, for passes that need their paths (prune.py)."""
    return list(_validator().iter_errors(doc.data))


def validate_schema(doc: Document) -> list[Diagnostic]:
    """Every schema violation of `doc`, one Diagnostic each, sorted by position."""
    # A value can fail the same kind of check twice (e.g. `min` against the general
    # aggregation schema and again against lhist's bounds); keep the most specific one.
    by_value: dict[KeyPath, SchemaError] = {}
    others: list[SchemaError] = []
    for error in _validator().iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if error.validator in _VALUE_CHECKS and "propertyNames" not in error.absolute_schema_path:
            best = by_value.get(path)
            if best is None or len(error.absolute_schema_path) > len(best.absolute_schema_path):
                by_value[path] = error
        else:
            others.append(error)
    seen: set[tuple[int, int, str]] = set()
    out: list[Diagnostic] = []
    translator = _Translator(doc)
    for error in [*others, *by_value.values()]:
        for diag in translator.translate(error):
            assert diag.loc is not None
            key = (diag.loc.line, diag.loc.col, diag.message)
            if key not in seen:
                seen.add(key)
                out.append(diag)
    out.sort(key=lambda d: (d.loc.line, d.loc.col) if d.loc else (0, 0))
    return out


def _noun(path: KeyPath) -> str:
    """What the mapping at `path` is, in the runbook's words: step, probe, span begin, ..."""
    if not path:
        return "runbook"
    parent, last = path[:-1], path[-1]
    if isinstance(last, int):
        noun = _ITEM_NOUNS.get(str(parent[-1])) if parent else None
        return noun or f"item {last + 1} of {_subject(parent)}"
    if parent == ("params",):
        return f"param '{last}'"
    if parent and parent[-1] == "span":
        return f"span {last}"
    if parent and parent[-1] == "expect":
        return f"selftest expect {last}"
    if parent and parent[-2:-1] == ("expect",):
        return f"expectation '{last}'"
    if last in ("span", "capture", "selftest", "params"):
        return "selftest params" if parent == ("selftest",) else str(last)
    if last == "expect":
        return "selftest expect"
    return f"'{last}'"


def _subject(path: KeyPath) -> str:
    """How to name the value at `path` in a message: 'emit' in probe, item 2 of ..."""
    if not path or isinstance(path[-1], int) or path[:-1] == ("params",):
        return _noun(path)
    if path[-2:-1] == ("span",) and path[-1] in ("begin", "end"):
        return _noun(path)
    return f"'{path[-1]}' in {_noun(path[:-1])}"


def _show(value: Any) -> str:
    """A value as the runbook would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, int | float):
        return "null" if value is None else str(value)
    return f"'{value}'"


def _got(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({_show(value)})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


def _join(items: Sequence[str], word: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _quoted(keys: Sequence[str], word: str = "and") -> str:
    return _join([f"'{k}'" for k in keys], word)


def _required_keys(schema: Any) -> list[str]:
    """Keys of a schema built only of `required` (or anyOf/oneOf of them), else []."""
    if isinstance(schema, dict) and set(schema) == {"required"}:
        return list(schema["required"])
    if isinstance(schema, dict) and set(schema) <= {"anyOf", "oneOf"}:
        return [k for sub in next(iter(schema.values())) for k in _required_keys(sub)]
    if isinstance(schema, list) and all(_required_keys(s) for s in schema):
        return [k for s in schema for k in _required_keys(s)]
    return []


class _Translator:
    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def diag(self, message: str, path: KeyPath, hint: str | None = None,
             key: bool = False) -> Diagnostic:
        loc = self.doc.key_loc(path) if key else self.doc.loc(path)
        return Diagnostic(message, loc, hint)

    def translate(self, e: SchemaError) -> list[Diagnostic]:
        path: KeyPath = tuple(e.absolute_path)
        inst, schema = e.instance, e.schema if isinstance(e.schema, dict) else {}
        # propertyNames checks each key as if it were the value; point at the key.
        if "propertyNames" in e.absolute_schema_path and isinstance(inst, str):
            why = schema.get("errorMessage") or e.message
            return [self.diag(f"'{inst}' is not a valid name in {_noun(path)}: {why}",
                              (*path, inst), key=True)]
        handler = getattr(self, f"on_{e.validator}", None)
        if handler is not None:
            value: Any = e.validator_value
            result: list[Diagnostic] = handler(e, path, inst, schema, value)
            return result
        return [self.diag(f"{_subject(path)}: {e.message}", path)]

    def on_additionalProperties(self, e: SchemaError, path: KeyPath, inst: Any,
                                schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        allowed = list(schema.get("properties", {}))
        out = []
        for key in (k for k in inst if k not in allowed):
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            message = f"unknown key '{key}' in {_noun(path)}"
            if close:
                out.append(self.diag(f"{message}; did you mean '{close[0]}'?", (*path, key),
                                     key=True))
            else:
                out.append(self.diag(message, (*path, key), f"allowed keys: {', '.join(allowed)}",
                                     key=True))
        return out

    def on_required(self, e: SchemaError, path: KeyPath, inst: Any,
                    schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        hint = "a linear histogram needs min, max and step" if "lhist" in inst else None
        # A misspelt key is reported once, as unknown with a suggestion, not also as missing.
        unknown = [k for k in inst if k not in schema.get("properties", {})] \
            if "properties" in schema else []
        missing = [k for k in value if k not in inst
                   and not difflib.get_close_matches(k, unknown, n=1, cutoff=0.6)]
        if not missing:
            return []
        keys = "key" if len(missing) == 1 else "keys"
        return [self.diag(f"{_noun(path)} is missing required {keys} {_quoted(missing)}", path,
                          hint, key=True)]

    def on_enum(self, e: SchemaError, path: KeyPath, inst: Any,
                schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        what = str(schema.get("title", path[-1] if path else "value")).lower()
        choices = [str(c) for c in value]
        close = difflib.get_close_matches(str(inst), choices, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else None
        return [self.diag(f"{_show(inst)} is not a {what}; use one of {', '.join(choices)}",
                          path, hint)]

    def on_const(self, e: SchemaError, path: KeyPath, inst: Any,
                 schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        hint = "write count: true; a count takes no expression" if path[-1:] == ("count",) \
            else None
        return [self.diag(f"{_subject(path)} must be {_show(value)}, "
                          f"not {_show(inst)}", path, hint)]

    def on_type(self, e: SchemaError, path: KeyPath, inst: Any,
                schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        if schema.get("title") == "Duration" and type(inst) in (int, float):
            return [self.diag(f"{_subject(path)}: {inst} has no unit; write {inst}s or another "
                              "unit (ns, us, ms, s, m, h)", path)]
        types = value if isinstance(value, list) else [value]
        wanted = _TITLE_NOUNS.get(str(schema.get("title"))) or _join(
            [self.type_noun(t, schema) for t in types], "or")
        hint = None
        if path and path[-1] in ("min", "max") and isinstance(inst, int):
            hint = f"a number as {path[-1]} is a bound, which only goes with lhist"
        elif "array" in types and isinstance(inst, str):
            hint = f"write [{inst}] for a list of one"
        elif "string" in types and isinstance(inst, bool | int | float):
            hint = f'quote it ("{_show(inst)}") to make it a string'
        return [self.diag(f"{_subject(path)}: expected {wanted}, got {_got(inst)}", path, hint)]

    def type_noun(self, name: str, schema: dict[str, Any]) -> str:
        items = schema.get("items")
        if name == "array" and isinstance(items, dict):
            if items.get("type") == "string":
                return "a list of strings"
            ref = str(items.get("$ref", ""))
            target = _schema().get("definitions", {}).get(ref.rsplit("/", 1)[-1], {})
            if "title" in target:
                return f"a list of {target['title'].lower()}s"
        return _TYPE_NOUNS.get(name, name)

    def on_pattern(self, e: SchemaError, path: KeyPath, inst: Any,
                   schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        what = str(schema.get("title", "value")).lower()
        why = schema.get("errorMessage") or f"it must match {value}"
        shown = f"'{inst}'" if str(inst).isprintable() else repr(inst)
        return [self.diag(f"{shown} is not a valid {what}: {why}", path)]

    def on_minItems(self, e: SchemaError, path: KeyPath, inst: Any,
                    schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        if value == 1:
            return [self.diag(f"{_subject(path)} is empty; list at least one item", path)]
        return [self.diag(f"{_subject(path)} needs at least {value} items", path)]

    def on_minLength(self, e: SchemaError, path: KeyPath, inst: Any,
                     schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        return [self.diag(f"{_subject(path)} must not be empty", path)]

    def on_minimum(self, e: SchemaError, path: KeyPath, inst: Any,
                   schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        return [self.diag(f"{_subject(path)} must be at least {value}, got {inst}",
                          path)]

    def on_dependencies(self, e: SchemaError, path: KeyPath, inst: Any,
                        schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        out = []
        for key, needs in value.items():
            for need in (n for n in needs if key in inst and n not in inst):
                out.append(self.diag(f"'{key}' in {_noun(path)} only works together with "
                                     f"'{need}'", (*path, key), f"add {need} or remove {key}",
                                     key=True))
        return out

    def on_anyOf(self, e: SchemaError, path: KeyPath, inst: Any,
                 schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        keys = _required_keys(value)
        if not keys or not isinstance(inst, dict):
            sub = best_match(e.context) if e.context else None
            if schema.get("errorMessage") or sub is None:
                why = schema.get("errorMessage") or e.message
                return [self.diag(f"{_subject(path)}: {why}", path)]
            return self.translate(sub)
        present = [k for k in inst if k in keys]  # document order
        if not present:
            return [self.diag(f"{_noun(path)} needs {_quoted(keys, 'or')}", path,
                              schema.get("errorMessage"), key=True)]
        both = "both " if len(present) == 2 else ""
        hint = "with lhist, min and max are its bounds" if {"min", "max"} & set(present) \
            else None
        return [self.diag(f"{_noun(path)} has {both}{_quoted(present)}; keep only one of them",
                          (*path, present[1]), hint, key=True)]

    on_oneOf = on_anyOf

    def on_not(self, e: SchemaError, path: KeyPath, inst: Any,
               schema: dict[str, Any], value: Any) -> list[Diagnostic]:
        if not isinstance(inst, dict):
            return []  # a value that should be a mapping: its type error says so
        present = [k for k in _required_keys(value) if k in inst]
        if not present:
            return [self.diag(f"{_subject(path)}: {e.message}", path)]
        # The only `not`s in the schema guard lhist's exclusive kinds and its `step`.
        if "lhist" in inst:
            both = "both " if len(present) == 1 else ""
            return [self.diag(f"{_noun(path)} has {both}{_quoted(['lhist', *present])}; keep "
                              "only one of them", (*path, present[0]), "with lhist, min and max "
                              "are its bounds and step the bucket width", key=True)]
        return [self.diag(f"'{present[0]}' in {_noun(path)} only goes with 'lhist'",
                          (*path, present[0]), f"remove {present[0]} or make this an lhist "
                          "aggregation", key=True)]
