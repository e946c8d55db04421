"""diff.json's shape: schema/diff.schema.json, next to result.json's (the same document is
result.json's `baseline` section under `run --baseline`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from bpfrun.paths import result_schema_path
from bpfrun.result import json_path


def diff_schema_path() -> Path:
    return result_schema_path().parent / "diff.schema.json"


@functools.cache
def _validator() -> Draft7Validator:
    return Draft7Validator(json.loads(diff_schema_path().read_text(encoding="utf-8")))


def validate_diff(doc: Any) -> list[str]:
    """Every way `doc` is not a diff.json, `$.path: message` each; [] when it is one."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{json_path(e.absolute_path)}: {e.message}" for e in errors]
